"""Traces, recorded with the OpenTelemetry SDK's in-memory exporter from a real receiver (in this process, so the
exporter can be read) subscribed to the simulator: a push and its dispatches form the expected spans, linked across
the inbox; a catch-up page's events link to the page; a failing Altinn call records its status; no attribute holds
the webhook's code or a token; the log lines written inside a span carry its ids; and the inbox writer stores a
trace context with a new event only, in the event's own commit."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from altinn_sim import SimSettings, running_simulator
from receiver.config import SubscriptionConfig
from receiver.observability import tracing
from receiver.observability.logs import JsonFormatter
from receiver.onboarding.demo import SCOPES, ReceiverServer, ReceiverSetup, register_identity
from receiver.store.errors import StoreError
from receiver.store.inbox import InboxWriter
from receiver.store.migrate import migrate
from receiver.store.records import NewEvent
from tests.catchup_support import event
from tests.dispatch_support import FAST_RETRIES, RECIPIENT_ORG, RESOURCE, SENDER_ORG
from tests.ingest_support import make_config, new_event, push, running_app, webhook
from tests.support import wait_until

CORRESPONDENCE = "no.altinn.correspondence.correspondence"
PULLED_ONLY = "no.altinn.correspondence.tracetest"  # no default pipeline matches it: its dispatch skips it
DETAILS = "/correspondence/api/v1/correspondence/*/details"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.")


class Lines(logging.Handler):
    """The dispatcher's log lines as the JSON they are written as."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@dataclass
class Traced:
    spans: list[ReadableSpan]
    lines: list[dict[str, Any]]
    secret: str
    pushed: str
    """The id of a correspondence event Altinn pushed whose first run's details GET was answered 500."""
    pulled: str
    """The id of an event only catch-up could find."""

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def dispatches(self, event_id: str) -> list[ReadableSpan]:
        return [s for s in self.named("dispatch") if attrs(s)["cloudevents.event_id"] == event_id]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def final(store: Path, event_id: str) -> bool:
    with closing(sqlite3.connect(store)) as conn:
        row = conn.execute("SELECT status FROM inbox WHERE id = ?", (event_id,)).fetchone()
    return row is not None and row[0] in ("done", "skipped")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Traced:
    """One run of a receiver with traces on, whose spans and lines the tests read; traces are off again after it."""
    tmp_path = tmp_path_factory.mktemp("traces")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lines = Lines()
    dispatch_log = logging.getLogger("receiver.dispatch")
    dispatch_log.addHandler(lines)
    dispatch_log.setLevel(logging.INFO)
    tracing.use(provider)
    try:
        with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as sim:
            sim.set_resource_owner(RESOURCE, SENDER_ORG)
            setup = ReceiverSetup(
                sim.url,
                register_identity(sim, tmp_path, org=SENDER_ORG, scopes=SCOPES),
                tmp_path / "receiver.db",
                [SubscriptionConfig(RESOURCE)],
                # Catch-up runs once, at the start, and finds the event published before: the push comes after.
                catchup={"interval": "1h", "start": "beginning"},
                dispatch=FAST_RETRIES,
            )
            pulled = event(RESOURCE) | {"type": PULLED_ONLY}
            sim.publish_event(pulled, push=False)
            with ReceiverServer(setup.write(tmp_path / "receiver.toml")) as receiver:
                receiver.wait_started()
                sim.admin.put("/faults", json={"path": DETAILS, "method": "GET", "error_rate": 1.0,
                                               "error_status": 500, "count": 1}).raise_for_status()  # fmt: skip
                sim.send_correspondence(RESOURCE, RECIPIENT_ORG)
                pushed = wait_until(lambda: _retried(setup.store), timeout=20, message="a pushed event run twice")
                wait_until(lambda: final(setup.store, pulled["id"]), message="the pulled event to be dispatched")
    finally:
        tracing.stop()
        dispatch_log.removeHandler(lines)
        dispatch_log.setLevel(logging.NOTSET)
    return Traced(list(exporter.get_finished_spans()), lines.lines, setup.secret, pushed, pulled["id"])


def _retried(store: Path) -> str | None:
    """The pushed event whose first run met the failing details GET, once its second run is done."""
    with closing(sqlite3.connect(store)) as conn:
        row = conn.execute(
            "SELECT id FROM inbox WHERE channel = 'push' AND attempts = 2 AND status = 'done'"
        ).fetchone()
    return str(row[0]) if row else None


def test_a_push_is_a_server_span_and_each_dispatch_of_its_event_links_back_to_it(traced: Traced) -> None:
    [push] = [s for s in traced.named("POST /events") if attrs(s)["cloudevents.event_id"] == traced.pushed]
    assert push.kind == SpanKind.SERVER and push.parent is None
    assert attrs(push)["cloudevents.event_type"].startswith(CORRESPONDENCE)
    assert (attrs(push)["altinn_receiver.outcome"], attrs(push)["http.response.status_code"]) == ("stored", 200)

    first, second = sorted(traced.dispatches(traced.pushed), key=lambda s: s.start_time or 0)
    for run in (first, second):
        assert run.kind == SpanKind.CONSUMER and run.parent is None
        [link] = run.links
        assert (link.context.trace_id, link.context.span_id) == (push.context.trace_id, push.context.span_id)
        assert run.context.trace_id != push.context.trace_id, "a dispatch is a trace of its own, linked"
    assert [attrs(first)["altinn_receiver.attempt"], attrs(second)["altinn_receiver.attempt"]] == [1, 2]
    assert attrs(first)["altinn_receiver.outcome"] == "retrying"
    assert attrs(first)["altinn_receiver.handler"] == "fetch_correspondence"
    assert attrs(second)["altinn_receiver.outcome"] == "done"
    assert attrs(second)["altinn_receiver.pipeline"] == CORRESPONDENCE + "*"
    assert [s.name for s in sorted(traced.children(second), key=lambda s: s.start_time or 0)] == [
        "handler fetch_correspondence",
        "handler store",
    ]
    [fetch] = [s for s in traced.children(second) if s.name == "handler fetch_correspondence"]
    calls = traced.children(fetch)
    assert {"GET /correspondence/api/v1/correspondence/{id}/details"} <= {c.name for c in calls}
    for call in calls:
        assert call.kind == SpanKind.CLIENT
        assert attrs(call)["http.response.status_code"] == 200


def test_an_event_found_by_catch_up_links_its_dispatch_to_the_page_it_came_in(traced: Traced) -> None:
    [run] = traced.dispatches(traced.pulled)
    assert attrs(run)["altinn_receiver.outcome"] == "skipped"
    [link] = run.links
    [page] = [s for s in traced.named("catchup page") if s.context.span_id == link.context.span_id]
    assert attrs(page)["altinn_receiver.events"] >= 1
    assert page.parent is not None
    [catchup] = [s for s in traced.named("catchup") if s.context.span_id == page.parent.span_id]
    assert attrs(catchup)["altinn_receiver.resource"] == RESOURCE
    pulls = [c for c in traced.children(page) if c.name == "GET /events/api/v1/events"]
    assert pulls and all(attrs(c)["altinn_receiver.api"] == "events" for c in pulls)


def test_a_failing_altinn_call_records_its_status_on_the_call_the_step_and_the_run(traced: Traced) -> None:
    first = min(traced.dispatches(traced.pushed), key=lambda s: s.start_time or 0)
    [fetch] = [s for s in traced.children(first) if s.name == "handler fetch_correspondence"]
    [failed] = [c for c in traced.children(fetch) if attrs(c)["http.response.status_code"] == 500]
    assert failed.name == "GET /correspondence/api/v1/correspondence/{id}/details"
    assert (failed.status.status_code, attrs(failed)["error.type"]) == (StatusCode.ERROR, "500")
    assert attrs(failed)["altinn_receiver.api"] == "correspondence"
    assert fetch.status.status_code == StatusCode.ERROR
    assert attrs(fetch)["altinn_receiver.outcome"] == "retry"
    assert "HTTP 500" in (fetch.status.description or "")
    assert first.status.status_code == StatusCode.ERROR


def test_token_grants_and_subscription_calls_are_spans_too(traced: Traced) -> None:
    apis = {attrs(s)["altinn_receiver.api"] for s in traced.spans if s.kind == SpanKind.CLIENT}
    assert {"maskinporten", "authentication", "events", "correspondence"} <= apis
    [register] = traced.named("subscription register")
    assert [c.name for c in traced.children(register)] == ["POST /events/api/v1/subscriptions"]


def test_no_span_attribute_holds_the_code_a_token_or_a_query(traced: Traced) -> None:
    values = [
        (span.name, key, str(value))
        for span in traced.spans
        for key, value in {**(span.attributes or {}), **span.resource.attributes}.items()
    ] + [(span.name, "status", span.status.description or "") for span in traced.spans]
    assert len(traced.spans) > 20
    leaks = [v for v in values if traced.secret in v[2] or "code=" in v[2] or "?" in v[2] or JWT.search(v[2])]
    assert leaks == []
    assert not [v for v in values if "bearer" in v[2].lower()]
    assert not {key for _, key, _ in values} & {"url.full", "url.query", "http.url", "http.target"}


def test_log_lines_written_inside_a_span_carry_its_ids(traced: Traced) -> None:
    second = max(traced.dispatches(traced.pushed), key=lambda s: s.start_time or 0)
    [done] = [line for line in traced.lines if line["msg"] == "event done" and line["event_id"] == traced.pushed]
    assert (done["trace_id"], done["span_id"]) == (f"{second.context.trace_id:032x}", f"{second.context.span_id:016x}")


def test_a_receiver_with_traces_off_stores_no_trace_context(tmp_path: Path) -> None:
    """The span facade when off: nothing is recorded, nothing stored beside the event."""
    config = make_config(tmp_path)
    assert not tracing.on()
    with running_app(config) as server, httpx.Client() as client:
        assert push(client, webhook(server.url), new_event(id=str(uuid.uuid4()))).status_code == 200
    with closing(sqlite3.connect(config.store.path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM inbox_traces").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM inbox").fetchone() == (1,)


def new_inbox_event(event_id: str) -> NewEvent:
    return NewEvent(event_id, CORRESPONDENCE + "published", "https://platform.example/x", "", RESOURCE,
                    str(uuid.uuid4()), "", '{"specversion":"1.0"}')  # fmt: skip


@pytest.mark.parametrize("with_a_refused_event", [False, True], ids=["one-statement", "one-by-one"])
def test_the_writer_stores_a_trace_context_only_for_a_new_event_and_in_its_commit(
    tmp_path: Path, with_a_refused_event: bool
) -> None:
    """Queued while another connection holds the write lock, the events become one group: written together, or one
    by one when an event in it cannot be stored (a lone surrogate in its id)."""
    path = tmp_path / "receiver.db"
    migrate(path)
    traced_ids = [str(uuid.uuid4()) for _ in range(5)]
    plain_id, known_id = str(uuid.uuid4()), str(uuid.uuid4())
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def main() -> list[bool | BaseException]:
        writer = InboxWriter(path, asyncio.get_running_loop())
        try:
            assert await writer.insert_event(new_inbox_event(known_id), "push")  # before traces: no context
            with closing(sqlite3.connect(path, isolation_level=None)) as locker:
                locker.execute("BEGIN IMMEDIATE")
                futures = [writer.insert_event(new_inbox_event(i), "push", parent) for i in traced_ids]
                futures.append(writer.insert_event(new_inbox_event(plain_id), "catchup"))
                futures.append(writer.insert_event(new_inbox_event(known_id), "push", parent))  # a repeated id
                if with_a_refused_event:
                    futures.append(writer.insert_event(new_inbox_event("\ud800" + plain_id), "push", parent))
                locker.execute("ROLLBACK")
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await asyncio.to_thread(writer.close)

    outcomes = asyncio.run(main())
    assert outcomes[:7] == [True] * 6 + [False]
    assert [isinstance(outcome, StoreError) for outcome in outcomes[7:]] == [True] * with_a_refused_event
    with closing(sqlite3.connect(path)) as conn:
        stored = dict(conn.execute("SELECT id, traceparent FROM inbox_traces").fetchall())
    assert stored == dict.fromkeys(traced_ids, parent)
