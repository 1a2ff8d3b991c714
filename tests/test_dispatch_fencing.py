"""Two `serve` processes on one store and a pause longer than the lease: the paused process's runs, taken over by
the other, are cancelled when it resumes and fenced meanwhile: none of their `ctx.store` writes or outcomes lands
after the new owner's, and its bookkeeping ends them without a traceback. On each backend."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from receiver.config import StoreConfig
from receiver.store import queue
from receiver.store.backends import open_backend
from receiver.store.errors import StoreError
from receiver.store.inbox import insert_event
from receiver.store.interface import POSTGRESQL
from receiver.store.records import InboxRecord
from tests.dispatch_plugins import recorded
from tests.ingest_support import PUBLISHED, ServeProcess, config_text, new_event, push, webhook
from tests.store_backends import event
from tests.store_backends import rows as store_rows
from tests.support import wait_until

EVENTS = 6


def pipelines(path: Path) -> str:
    return f"""
[dispatch]
lease = "1s"
poll_interval = "100ms"

[[pipelines]]
types = ["{PUBLISHED}"]
handlers = ["scribbler"]

[handlers.scribbler]
use = "tests.dispatch_plugins:Scribbler"
path = {json.dumps(str(path))}
"""


def rows(store: StoreConfig) -> list[dict[str, Any]]:
    try:
        return store_rows(store, "SELECT * FROM scribbler_rows ORDER BY n")
    except StoreError:  # not created yet
        return []


def inbox_rows(store: StoreConfig) -> list[dict[str, Any]]:
    return store_rows(store, "SELECT * FROM inbox ORDER BY seq")


def lost_lines(serve: ServeProcess) -> list[dict[str, object]]:
    return [line for line in serve.log_lines() if str(line["msg"]).startswith("lease lost")]


def test_a_paused_process_whose_runs_were_taken_over_writes_nothing_after_the_new_owner(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    errors = tmp_path / "errors.jsonl"
    store = store_config
    # One process each: the pause (SIGSTOP) is of the process that runs the events.
    a = ServeProcess(tmp_path / "a", args=["--single-process"])
    a.config.write_text(config_text(store, a.port) + pipelines(errors))
    b = ServeProcess(tmp_path / "b", args=["--single-process"])
    b.config.write_text(config_text(store, b.port) + pipelines(errors))
    events = [new_event(type=PUBLISHED) for _ in range(EVENTS)]

    with a, httpx.Client(timeout=10) as client:
        assert a.process is not None
        for event in events:
            assert push(client, webhook(a.url), event).status_code == 200
        wait_until(
            lambda: {row["event_id"] for row in rows(store)} == {event["id"] for event in events},
            message="every event running in process A",
        )
        a.signal(signal.SIGSTOP)  # longer than the lease: B takes every event over
        try:
            with b:
                assert b.process is not None
                wait_until(
                    lambda: {row["status"] for row in inbox_rows(store)} == {"done"},
                    timeout=20,
                    message="process B to finish every event",
                )
                taken_over = max(row["n"] for row in rows(store) if row["pid"] == a.process.pid)
                b_rows = {row["event_id"]: row["n"] for row in rows(store) if row["pid"] == b.process.pid}
                a.signal(signal.SIGCONT)
                wait_until(lambda: len(lost_lines(a)) >= EVENTS, message="A to give up every run")
                b.signal(signal.SIGTERM)
                assert b.wait() == 0
        finally:
            a.signal(signal.SIGCONT)
        a.signal(signal.SIGTERM)
        assert a.wait() == 0

    assert set(b_rows) == {event["id"] for event in events}, "B ran every event"
    late = [dict(row) for row in rows(store) if row["pid"] == a.process.pid and row["n"] > taken_over]
    assert late == [], "A wrote after B had taken its runs over"
    for row in inbox_rows(store):
        assert (row["status"], row["attempts"], row["lease_owner"]) == ("done", 2, ""), "B's outcome stands"
    history = store_rows(store, "SELECT event_id, attempt, outcome FROM attempts ORDER BY seq")
    assert sorted((row["event_id"], row["attempt"], row["outcome"]) for row in history) == sorted(
        (event["id"], 2, "done") for event in events
    ), "only B's runs are in the history: A's runs, taken over, wrote none"
    lost = lost_lines(a)
    assert sorted(str(line["event_id"]) for line in lost) == sorted(event["id"] for event in events), "once per run"
    assert all(line["level"] == "warning" for line in lost)
    refused = recorded(errors)
    assert all(line["pid"] == a.process.pid and str(line["error"]).startswith("LeaseLost: ") for line in refused)
    output = a.log_path.read_text() + a.err_path.read_text()
    for word in ("Traceback", "KeyError", "CancelledError", '"level": "error"'):
        assert word not in output


def test_a_transaction_left_idle_past_the_lease_does_not_keep_its_event_from_being_taken_over(store_url: str) -> None:
    """The pause above, where it once fell on PostgreSQL: inside a run's fenced write, between the check that locks
    the event's row and the commit. The dispatcher's sessions end such a transaction after a lease, so another
    worker takes the event over then, instead of skipping the locked row for as long as the pause lasts."""
    lease = 1.0
    backend = open_backend(StoreConfig(url=store_url))
    backend.migrate()

    async def main() -> tuple[list[int], int, float, BaseException | None]:
        paused = await backend.connect(background=True, stalled_after=lease)
        other = await backend.connect(background=True, stalled_after=lease)
        ended: BaseException | None = None
        try:
            assert await insert_event(other, event("instance-1"), "push")
            [claimed] = await queue.claim(paused, "a/1", lease)
            started = time.monotonic()
            try:
                async with paused.transaction() as tx:
                    assert await tx.fetch(queue.FENCE[POSTGRESQL], {"seq": claimed.seq, "token": "a/1"})
                    # Paused here: this transaction waits, its row locked, while the other worker claims.
                    taken: list[InboxRecord] = []
                    while not taken and time.monotonic() - started < 10 * lease:
                        taken = await queue.claim(other, "b/1", 60)
                        await asyncio.sleep(0.05)
                    waited = time.monotonic() - started
            except StoreError as exc:
                ended = exc
            return [record.seq for record in taken], claimed.seq, waited, ended
        finally:
            await paused.close()
            await other.close()

    taken, claimed, waited, ended = asyncio.run(main())
    assert taken == [claimed], f"the event was not taken over in {waited:.1f}s"
    assert lease <= waited < 5 * lease
    assert isinstance(ended, StoreError), "the paused worker's transaction was ended by the server"
