"""SIGTERM on a real `altinn-receiver serve` with handlers running: pushes and /readyz answer 503 with Retry-After,
a handler that finishes within `shutdown_timeout` is done, one that does not has its claim released, exit 0."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.ingest_support import PUBLISHED, ServeProcess, inbox_rows, new_event, push, webhook
from tests.pipeline_support import pipelines_toml
from tests.support import wait_until

READ = "no.altinn.correspondence.correspondencereceiverread"
SHUTDOWN_TIMEOUT = 4.0
PIPELINES = pipelines_toml(
    ([PUBLISHED], ["brief"]),
    ([READ], ["stuck"]),
    dispatch={"poll_interval": "100ms"},
    handlers={
        "brief": {"use": "tests.shutdown_handlers:Sleeper", "seconds": "1500ms"},
        "stuck": {"use": "tests.shutdown_handlers:Sleeper", "seconds": "10m"},
    },
)


def status(serve: ServeProcess, event_id: str) -> str:
    [row] = inbox_rows(serve.store, "id = ?", event_id)
    return str(row["status"])


def draining(client: httpx.Client, url: str) -> httpx.Response | None:
    response = client.get(f"{url}/readyz")
    return response if response.status_code == 503 else None


def test_sigterm_lets_running_handlers_finish_and_releases_the_claims_of_those_that_cannot(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, shutdown_timeout=f"{SHUTDOWN_TIMEOUT:g}s")
    serve.config.write_text(serve.config.read_text() + PIPELINES)
    brief, stuck = new_event(type=PUBLISHED), new_event(type=READ)
    with serve, httpx.Client(timeout=10) as client:
        for event in (brief, stuck):
            assert push(client, webhook(serve.url), event).status_code == 200
        wait_until(
            lambda: status(serve, brief["id"]) == status(serve, stuck["id"]) == "processing",
            message="both handlers to be running",
        )

        serve.signal(signal.SIGTERM)
        signalled = time.monotonic()
        ready = wait_until(lambda: draining(client, serve.url), message="/readyz to answer 503")
        refused = push(client, webhook(serve.url), new_event())
        code = serve.wait(timeout=SHUTDOWN_TIMEOUT + 10)
        stopped_after = time.monotonic() - signalled

    assert ready is not None and int(ready.headers["retry-after"]) > 0 and ready.json()["draining"] is True
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
    assert code == 0
    assert stopped_after < SHUTDOWN_TIMEOUT + 3, "the stuck handler must not hold the shutdown past its deadline"
    [finished] = inbox_rows(serve.store, "id = ?", brief["id"])
    assert finished["status"] == "done"
    [released] = inbox_rows(serve.store, "id = ?", stuck["id"])
    assert released["status"] in ("pending", "retrying")
    assert (released["lease_owner"], released["lease_until"]) == ("", "")
