"""`forward_http` against a recording HTTP server on loopback: structured and binary CloudEvents with the
configured headers, 5xx and 429 retried (Retry-After honoured) until 2xx, other 4xx dead, header values never in
the log or the store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from altinn_sim.testing import Webhook
from receiver.config import Config, load_config
from tests.dispatch_support import dispatching_app, query, wait_settled
from tests.ingest_support import config_text, new_event, push, webhook
from tests.pipeline_support import CORRESPONDENCE_EVENTS, pipelines_toml
from tests.support import wait_until, write_config

SECRET_HEADER = "Bearer forward-token-that-must-stay-secret"


def forward_config(tmp_path: Path, url: str, mode: str) -> Config:
    text = config_text(tmp_path / "r.db") + pipelines_toml(
        ([CORRESPONDENCE_EVENTS], ["to_archive", "to_case_system"]),
        dispatch={"poll_interval": "50ms", "backoff_base": "20ms", "backoff_cap": "100ms"},
        handlers={
            "to_archive": {
                "use": "forward_http",
                "url": f"{url}/archive?code=archive-code",
                "mode": mode,
                "headers": {"Authorization": SECRET_HEADER},
                "timeout": "2s",
            },
            "to_case_system": {"use": "forward_http", "url": f"{url}/case"},
        },
    )
    return load_config(write_config(tmp_path / "receiver.toml", text))


def test_structured_mode_posts_the_event_as_one_cloudevent_to_each_configured_instance(tmp_path: Path) -> None:
    event = new_event(alternativesubject="/organisation/314249879")
    with Webhook() as target:
        config = forward_config(tmp_path, target.url, "structured")
        with dispatching_app(config) as server, httpx.Client() as client:
            assert push(client, webhook(server.url), event).status_code == 200
            assert wait_settled(config.store.path, 1) == {event["id"]: "done"}
        archive, case = (next(r for r in target.received if r.path == p) for p in ("/archive", "/case"))
    assert archive.query == "code=archive-code" and archive.headers["authorization"] == SECRET_HEADER
    assert archive.headers["content-type"] == "application/cloudevents+json"
    body = json.loads(archive.body)
    for name in ("id", "type", "source", "subject", "resource", "resourceinstance", "alternativesubject"):
        assert body[name] == event[name]
    assert body["specversion"] == "1.0" and body["time"].startswith("2025-03-14T09:26:53.589793")
    assert "authorization" not in case.headers


def test_binary_mode_sends_the_attributes_as_ce_headers(tmp_path: Path) -> None:
    event = new_event()
    with Webhook() as target:
        config = forward_config(tmp_path, target.url, "binary")
        with dispatching_app(config) as server, httpx.Client() as client:
            assert push(client, webhook(server.url), event).status_code == 200
            wait_settled(config.store.path, 1)
        archive = next(r for r in target.received if r.path == "/archive")
    assert archive.headers["ce-id"] == event["id"] and archive.headers["ce-type"] == event["type"]
    assert archive.headers["ce-resourceinstance"] == event["resourceinstance"]
    assert archive.headers["ce-specversion"] == "1.0"


def test_5xx_and_429_are_retried_until_the_target_answers_2xx(tmp_path: Path) -> None:
    event = new_event()
    with Webhook(status=503) as target:
        config = forward_config(tmp_path, target.url, "structured")
        with dispatching_app(config) as server, httpx.Client() as client:
            assert push(client, webhook(server.url), event).status_code == 200
            wait_until(lambda: len(target.received) >= 2, message="two failed forwards")
            target.status = 429
            wait_until(lambda: len(target.received) >= 3, message="a forward answered 429")
            target.status = 200
            assert wait_settled(config.store.path, 1) == {event["id"]: "done"}
    [row] = query(config.store.path, "SELECT attempts FROM inbox")
    assert row["attempts"] >= 4


def test_a_4xx_answer_is_permanent_and_neither_the_log_nor_the_store_shows_the_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    event = new_event()
    with Webhook(status=404) as target:
        config = forward_config(tmp_path, target.url, "structured")
        with dispatching_app(config) as server, httpx.Client() as client:
            assert push(client, webhook(server.url), event).status_code == 200
            assert wait_settled(config.store.path, 1) == {event["id"]: "dead"}
    [row] = query(config.store.path, "SELECT last_error, attempts FROM inbox")
    assert row["attempts"] == 1
    assert "HTTP 404" in row["last_error"] and "/archive" in row["last_error"]
    assert "archive-code" not in row["last_error"] and "forward-token" not in row["last_error"]
    logged = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "event is dead" in logged and "/archive" in logged
    assert "forward-token" not in logged and "archive-code" not in logged
