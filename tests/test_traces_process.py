"""Traces as `serve` switches them from its environment: off unless OTEL_* asks, exported over OTLP/HTTP to a
collector when it does (here a small one on a loopback port, decoding what the SDK's exporter sends), off with
OTEL_SDK_DISABLED, a collector that does not answer cannot hold up the exit for long, and a receiver that cannot
import opentelemetry at all behaves as it always has."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.server_thread import ServerThread, free_port
from tests.ingest_support import SECRET, ServeProcess, new_event, push, webhook
from tests.support import wait_until

# A sitecustomize that makes `import opentelemetry` fail, as in an install without the extra.
BLOCKER = """
import sys


class NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoOpenTelemetry())
"""
NOT_INSTALLED = "OTEL_* variables ask for traces, but OpenTelemetry is not installed"


class Collector:
    """An OTLP/HTTP trace receiver: `POST /v1/traces` with a protobuf ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    async def traces(self, request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        for resource_spans in message.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({"name": span.name, "trace_id": span.trace_id.hex(), "resource": resource,
                                       "attributes": attributes(span.attributes),
                                       "links": [link.span_id.hex() for link in span.links],
                                       "span_id": span.span_id.hex()})  # fmt: skip
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    def named(self, name: str) -> list[dict[str, Any]]:
        return [span for span in self.spans if span["name"] == name]


def value(any_value: AnyValue) -> Any:
    return getattr(any_value, any_value.WhichOneof("value") or "string_value")


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    running = Collector()
    with ServerThread(running.app) as server:
        yield running, server.url


def dispatched(serve: ServeProcess, event_id: str) -> bool:
    with closing(sqlite3.connect(serve.store)) as conn:
        row = conn.execute("SELECT status FROM inbox WHERE id = ?", (event_id,)).fetchone()
    return row is not None and row[0] == "done"


def push_and_dispatch(serve: ServeProcess) -> tuple[str, set[str]]:
    """Push one event, wait for its dispatch (the store-only default pipeline), and scrape: the metric families."""
    event = new_event()
    with httpx.Client(timeout=10) as client:
        answer = push(client, webhook(serve.url), event)
        assert (answer.status_code, answer.json()) == (200, {"status": "stored"})
        wait_until(lambda: dispatched(serve, event["id"]), message="the event to be dispatched")
        text = client.get(serve.url + "/metrics").text
    return event["id"], {family.name for family in text_string_to_metric_families(text)}


def trace_rows(serve: ServeProcess) -> int:
    with closing(sqlite3.connect(serve.store)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM inbox_traces").fetchone()[0])


def test_without_the_extra_serve_stores_and_dispatches_as_before_and_says_why_traces_are_off(tmp_path: Path) -> None:
    (tmp_path / "as-before").mkdir()
    (tmp_path / "blocked").mkdir()
    with ServeProcess(tmp_path / "as-before") as before:
        _, families = push_and_dispatch(before)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": str(site), "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    with ServeProcess(tmp_path / "blocked", env=env) as blocked:
        _, blocked_families = push_and_dispatch(blocked)
    assert blocked_families == families
    assert {"altinn_receiver_step", "altinn_receiver_build_info", "process_cpu_seconds"} <= families
    assert trace_rows(blocked) == 0
    assert blocked.err_path.read_text() == ""
    lines = blocked.log_lines()
    # Once per process: serve's webhook and worker.
    assert [line["level"] for line in lines if line["msg"].startswith(NOT_INSTALLED)] == ["warning", "warning"]
    assert "pip install 'altinn-receiver[otel]'" in next(line["msg"] for line in lines if NOT_INSTALLED in line["msg"])
    assert not [line for line in lines if "trace_id" in line]
    assert not [line for line in before.log_lines() if "trace" in line["msg"] or "trace_id" in line]


def test_serve_exports_its_spans_over_otlp_http_when_the_environment_names_an_endpoint(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    spans, url = collector
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with ServeProcess(tmp_path, env=env) as serve:
        event_id, _ = push_and_dispatch(serve)
        wait_until(lambda: spans.named("dispatch"), message="the dispatch span at the collector")
    [received] = [s for s in spans.named("POST /events") if s["attributes"].get("cloudevents.event_id") == event_id]
    [run] = spans.named("dispatch")
    assert run["links"] == [received["span_id"]]
    assert received["resource"]["service.name"] == "altinn-receiver"
    assert received["attributes"]["url.path"] == "/events"
    assert not [span for span in spans.spans if SECRET in repr(span) or "code=" in repr(span)]
    assert trace_rows(serve) == 1
    lines = serve.log_lines()
    # Once per process: serve's webhook and worker each export their own spans.
    assert [line["exporters"] for line in lines if line["msg"] == "traces on"] == [["otlp"], ["otlp"]]
    [access] = [line for line in lines if line.get("event_id") == event_id and line["logger"] == "receiver.access"]
    assert (access["trace_id"], access["span_id"]) == (received["trace_id"], received["span_id"])


def test_otel_sdk_disabled_keeps_traces_off_whatever_else_is_set(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    spans, url = collector
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_TRACES_EXPORTER": "otlp"}
    with ServeProcess(tmp_path, env=env) as serve:
        push_and_dispatch(serve)
    assert spans.spans == [] and trace_rows(serve) == 0
    assert not [line for line in serve.log_lines() if "trace" in line["msg"]]


def test_an_unreachable_collector_holds_up_the_exit_for_at_most_a_few_seconds(tmp_path: Path) -> None:
    """The exporter would retry for OTEL_EXPORTER_OTLP_TIMEOUT (here 60 s); `serve` waits for it for 5 s only."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", "OTEL_EXPORTER_OTLP_TIMEOUT": "60"}
    with ServeProcess(tmp_path, env=env) as serve:
        push_and_dispatch(serve)
        stopping = time.monotonic()
        serve.signal(signal.SIGTERM)
        assert serve.wait(60) == 0
    assert time.monotonic() - stopping < 20
