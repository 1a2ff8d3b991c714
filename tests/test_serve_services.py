"""The lifespan and background services: pushes are accepted while services start, readiness never waits for them,
and on shutdown they stop in reverse order before `shutdown_timeout`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from receiver.runtime import Runtime, Service
from tests.ingest_support import inbox_rows, make_config, new_event, push, running_app, webhook
from tests.support import wait_until


class RecordingService:
    """A service as the dispatcher or catch-up would be: its start may wait on the outside world."""

    def __init__(self, name: str, journal: list[str], *, gate: asyncio.Event | None = None, fail: bool = False) -> None:
        self.name = name
        self.journal = journal
        self.gate = gate
        self.fail = fail
        self.state = "new"
        self.deadline_left = -1.0

    async def start(self, runtime: Runtime) -> None:
        self.journal.append(f"start {self.name}")
        self.state = "starting"
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("Altinn said no")
        self.state = "running"

    async def stop(self, deadline: float) -> None:
        self.deadline_left = deadline - time.monotonic()
        self.journal.append(f"stop {self.name}")
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        return {"state": self.state}


def test_pushes_and_readiness_do_not_wait_for_services_which_stop_in_reverse(tmp_path: Path) -> None:
    journal: list[str] = []
    gate = asyncio.Event()  # never set: the second service is still starting when the receiver stops
    first = RecordingService("first", journal)
    slow = RecordingService("slow", journal, gate=gate)
    never = RecordingService("never", journal)
    services: list[Service] = [first, slow, never]
    config = make_config(tmp_path, shutdown_timeout="7s")
    with running_app(config, services=services) as server, httpx.Client(timeout=10) as client:
        wait_until(lambda: slow.state == "starting", message="the slow service to be starting")
        event = new_event()
        assert push(client, webhook(server.url), event).status_code == 200
        ready = client.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["services"] == {
            "first": {"state": "running"},
            "slow": {"state": "starting"},
            "never": {"state": "new", "waiting_to_start": True},
        }
    assert journal == ["start first", "start slow", "stop slow", "stop first"]
    assert 0 < slow.deadline_left <= 7
    assert inbox_rows(config.store.path, "id = ?", event["id"])


def test_a_service_that_fails_to_start_is_reported_and_the_webhook_stays_ready(tmp_path: Path) -> None:
    journal: list[str] = []
    broken = RecordingService("broken", journal, fail=True)
    after = RecordingService("after", journal)
    with running_app(make_config(tmp_path), services=[broken, after]) as server, httpx.Client(timeout=10) as client:
        wait_until(lambda: after.state == "running", message="the next service to start anyway")
        ready = client.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["services"]["broken"]["start_error"] == "RuntimeError: Altinn said no"
