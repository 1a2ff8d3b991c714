"""One event the store cannot take never fails the events committed beside it.

The webhook's writer commits pushes in groups (one transaction, one fsync). An event whose text SQLite's encoder
refuses (a lone surrogate, valid JSON as `"\\ud800"`) used to fail its whole group: every push beside it got 503 and
Altinn retried it. Here the group is retried one event at a time, so only that event gets an error. The writer must be
right without the webhook's own refusals, so it is driven directly too; and an error of the store as a whole (the
write lock, a full disk) still fails the group: nothing may say "stored" that is not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from receiver.store.errors import StoreError
from receiver.store.inbox import InboxWriter
from receiver.store.migrate import migrate
from receiver.store.records import NewEvent
from tests.hostile_support import new_id
from tests.ingest_support import SECRET, compact, count, inbox_rows, make_config, new_event, running_app

LONE_SURROGATE = "\ud800"
CONNECTIONS = 100
BAD_AT = 40


def stored_ids(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {str(row[0]) for row in conn.execute("SELECT id FROM inbox")}


def event(event_id: str) -> NewEvent:
    return NewEvent(event_id, "no.altinn.correspondence.correspondencepublished", "https://platform.example/x",
                    "", "urn:altinn:resource:r", new_id(), "", '{"specversion":"1.0"}')  # fmt: skip


@pytest.mark.parametrize("with_validation", [False, True], ids=["events-only", "with-a-validation"])
def test_the_writer_fails_only_the_event_it_cannot_store_and_commits_the_rest_of_its_group(
    tmp_path: Path, with_validation: bool
) -> None:
    path = tmp_path / "receiver.db"
    migrate(path)
    good = [new_id() for _ in range(60)]
    bad = LONE_SURROGATE + new_id()

    async def main() -> tuple[list[bool | BaseException], BaseException | bool, bool, bool]:
        writer = InboxWriter(path, asyncio.get_running_loop())
        try:
            # Another connection holds the write lock while everything is queued: the writer's first group waits
            # for it, and what is queued meanwhile becomes one group with the bad event inside it.
            with closing(sqlite3.connect(path, isolation_level=None)) as locker:
                locker.execute("BEGIN IMMEDIATE")
                futures = [writer.insert_event(event(i), "push") for i in good[:30]]
                refused = writer.insert_event(event(bad), "push")
                validation = writer.record_validation(new_id(), "sub-1", "src") if with_validation else None
                futures += [writer.insert_event(event(i), "push") for i in good[30:]]
                repeated = writer.insert_event(event(good[-1]), "push")
                locker.execute("ROLLBACK")
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
            refusal = await asyncio.gather(refused, return_exceptions=True)
            validated = await validation if validation is not None else True
            return (
                [*outcomes, await repeated],
                refusal[0],
                validated,
                await writer.insert_event(event(new_id()), "push"),
            )
        finally:
            await asyncio.to_thread(writer.close)

    outcomes, refusal, validated, afterwards = asyncio.run(main())
    assert outcomes == [True] * len(good) + [False], "every good event stored; a repeated id is a duplicate"
    assert isinstance(refusal, StoreError)
    assert "cannot be stored" in str(refusal) and "surrogates not allowed" in str(refusal)
    assert validated is True and afterwards is True
    assert set(good) <= stored_ids(path) and len(stored_ids(path)) == len(good) + 1


def test_an_error_of_the_whole_store_still_fails_the_whole_group(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    migrate(path)
    ids = [new_id() for _ in range(20)]

    async def main() -> list[bool | BaseException]:
        writer = InboxWriter(path, asyncio.get_running_loop(), busy_timeout_ms=200)
        try:
            with closing(sqlite3.connect(path, isolation_level=None)) as locker:
                locker.execute("BEGIN IMMEDIATE")
                futures = [writer.insert_event(event(i), "push") for i in ids]
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
                locker.execute("ROLLBACK")
            return outcomes
        finally:
            await asyncio.to_thread(writer.close)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, StoreError) and "locked" in str(outcome) for outcome in outcomes)
    assert count(path) == 0


def test_one_bad_push_among_a_hundred_concurrent_good_ones_fails_alone(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    good = [new_event() for _ in range(200)]
    bad = new_event(id=LONE_SURROGATE + new_id())  # valid JSON: compact() writes it as "\ud800…"
    bodies = [compact(e) for e in good[:BAD_AT]] + [compact(bad)] + [compact(e) for e in good[BAD_AT:]]
    statuses: list[int] = []

    async def push_all(url: str) -> None:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CONNECTIONS)) as client:
            headers = {"content-type": "application/json"}
            responses = await asyncio.gather(*(client.post(url, content=body, headers=headers) for body in bodies))
        statuses.extend(response.status_code for response in responses)

    with running_app(config) as server:
        runtime = cast(Any, server.config.app).state.runtime
        pushes = threading.Thread(target=asyncio.run, args=(push_all(f"{server.url}/events?code={SECRET}"),))
        # The write lock held by another connection until a connection's worth of pushes (the bad one among them)
        # waits on the writer, so that they are committed as one group; released early rather than past the
        # webhook's 2 s wait for the lock.
        with closing(sqlite3.connect(config.store.path, isolation_level=None)) as locker:
            locker.execute("BEGIN IMMEDIATE")
            pushes.start()
            deadline = time.monotonic() + 1.5
            while runtime.inflight < CONNECTIONS and time.monotonic() < deadline:
                time.sleep(0.005)
            locker.execute("ROLLBACK")
        pushes.join()

    assert statuses[:BAD_AT] + statuses[BAD_AT + 1 :] == [200] * len(good)
    assert statuses[BAD_AT] in (400, 500), "refused: at the door (400) or by the store (500), never acknowledged"
    assert {row["id"] for row in inbox_rows(config.store.path)} == {e["id"] for e in good}
