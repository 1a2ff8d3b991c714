"""Catch-up fetches the next page while it stores the last one: when a page fails to store, the page fetched ahead
is dropped (none of its events stored, the cursor before both), and the next run stores both, in the pull API's order,
each event once. A page goes to the inbox writer at once and commits as one, whatever is queued before it."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from altinn_sim import RunningSimulator
from receiver.config import StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import Identity, ReceiverServer, ReceiverSetup
from receiver.runtime import Runtime, Service
from receiver.store.backends import open_backend
from receiver.store.errors import EventRefused
from receiver.store.inbox import InboxWriter, stored
from receiver.store.interface import Database
from receiver.store.migrate import migrate
from receiver.store.records import NewEvent
from receiver.sync.catchup import CatchupService
from tests.catchup_support import event, fresh_resource, rows
from tests.store_backends import rows as store_rows
from tests.store_backends import run_on
from tests.support import wait_until

PAGE = 5
REFUSAL = "refused by the test"


def catchup_in_pages(runtime: Runtime) -> list[Service]:
    return [CatchupService(pull_lag=0, page_size=PAGE)]


def refuse(store: Path, events: list[dict[str, Any]]) -> None:
    """Make the store refuse `events`, each after SQLite has worked for a while (tens of milliseconds): the page's
    store is slow enough that the next page has been fetched before it fails."""
    ids = ", ".join(f"'{item['id']}'" for item in events)
    with sqlite3.connect(store) as conn:
        conn.execute(
            f"""CREATE TRIGGER refuse_page BEFORE INSERT ON inbox WHEN NEW.id IN ({ids}) BEGIN
                SELECT RAISE(ABORT, '{REFUSAL}')
                WHERE length(replace(printf('%.*c', 2000000, 'x'), 'x', 'yy')) > 0;
            END"""
        )


def stored_in_order(store: Path) -> list[str]:
    return [row["id"] for row in rows(store, "SELECT id FROM inbox ORDER BY seq")]


def cursor(store: Path) -> str:
    [row] = rows(store, "SELECT after FROM catchup_cursors")
    return str(row["after"])


def pulled_after(sim: RunningSimulator, event_id: str) -> bool:
    return any(f"after={event_id}" in entry["path"] for entry in sim.state_snapshot()["requests"])


def test_a_page_that_fails_to_store_drops_the_page_fetched_ahead_and_the_next_run_stores_both_in_order(
    sim: RunningSimulator, owner: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource(sim, owner.org)
    published = [event(resource) for _ in range(4 * PAGE)]
    for item in published:
        sim.publish_event(item, push=False)
    ids = [item["id"] for item in published]
    pages = [ids[start : start + PAGE] for start in range(0, len(ids), PAGE)]
    setup = ReceiverSetup(sim.url, owner, tmp_path / "r.db", [SubscriptionConfig(resource)],
                          catchup={"start": "beginning", "interval": "5m"})  # fmt: skip
    config = setup.write(tmp_path / "r.toml")
    migrate(setup.store)
    refuse(setup.store, published[2 * PAGE : 3 * PAGE])  # the third page

    with ReceiverServer(config, catchup_in_pages) as receiver:
        receiver.wait_started()
        status = httpx.get(receiver.url + "/readyz").json()["services"]["catchup"]
    assert "cannot be stored" in status["error"] and REFUSAL in status["error"]
    # The fourth page was fetched while the third was being stored, and none of it was stored.
    wait_until(lambda: pulled_after(sim, pages[2][-1]), message="the fourth page fetched ahead")
    assert stored_in_order(setup.store) == pages[0] + pages[1]
    assert cursor(setup.store) == pages[1][-1]

    with sqlite3.connect(setup.store) as conn:
        conn.execute("DROP TRIGGER refuse_page")
    with ReceiverServer(config, catchup_in_pages) as receiver:
        receiver.wait_started()
        status = httpx.get(receiver.url + "/readyz").json()["services"]["catchup"]
    assert "error" not in status and status["enqueued"] == 2 * PAGE
    assert stored_in_order(setup.store) == ids
    assert cursor(setup.store) == ids[-1]
    assert {row["channel"] for row in rows(setup.store, "SELECT channel FROM inbox")} == {"catchup"}


def test_a_page_queued_behind_pushes_commits_whole_in_one_batch(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    migrate(path)

    def new(count: int) -> list[NewEvent]:
        return [NewEvent(str(uuid.uuid4()), "no.altinn.correspondence.correspondencepublished", "https://x", "",
                         "urn:altinn:resource:r", str(uuid.uuid4()), "", "{}") for _ in range(count)]  # fmt: skip

    pages = [new(1000) for _ in range(3)]

    async def main() -> list[bool]:
        writer = InboxWriter(path, asyncio.get_running_loop())
        try:
            # While another connection holds the write lock, pushes and then the pages queue up behind each other.
            with closing(sqlite3.connect(path, isolation_level=None)) as locker:
                locker.execute("BEGIN IMMEDIATE")
                futures = [writer.insert_event(push, "push") for push in new(10)]
                for page in pages:
                    futures += writer.insert_events(page, "catchup")
                locker.execute("ROLLBACK")
            return list(await asyncio.gather(*futures))
        finally:
            await asyncio.to_thread(writer.close)

    assert asyncio.run(main()) == [True] * 3010
    # Each commit stamps its rows' `received_at`: every page has one stamp.
    for page in pages:
        ids = ", ".join(f"'{event.id}'" for event in page)
        assert len(rows(path, f"SELECT DISTINCT received_at FROM inbox WHERE id IN ({ids})")) == 1


def test_a_statement_through_the_writer_commits_after_the_page_queued_before_it(store_config: StoreConfig) -> None:
    """Catch-up moves its cursor through the inbox writer (`Writer.execute`): the statement runs after the events
    queued before it, so it sees them, and is committed."""
    page = [NewEvent(str(uuid.uuid4()), "no.altinn.correspondence.correspondencepublished", "https://x", "",
                     "urn:altinn:resource:r", str(uuid.uuid4()), "", "{}") for _ in range(150)]  # fmt: skip
    count = (
        "INSERT INTO receiver_state (key, value, updated_at)"
        " SELECT 'test.count', CAST(COUNT(*) AS TEXT), :stamp FROM inbox"
    )

    async def main(db: Database) -> list[bool]:
        writer = await open_backend(store_config).writer()
        try:
            futures = writer.insert_events(page, "catchup")
            moved = writer.execute(count, {"stamp": "2026-12-02T00:00:00+00:00"})
            return [*await asyncio.gather(*futures), await moved]
        finally:
            await writer.aclose()

    assert run_on(store_config, main) == [True] * (len(page) + 1)
    assert store_rows(store_config, "SELECT value FROM receiver_state WHERE key = 'test.count'") == [{"value": "150"}]


def test_a_page_with_an_event_the_store_refuses_raises_its_error_and_stores_the_rest(tmp_path: Path) -> None:
    """Catch-up waits for a page's last future only (`stored`): an event refused in the middle still fails the
    page, with its own error, while the others are stored."""
    path = tmp_path / "r.db"
    migrate(path)
    page = [NewEvent(str(uuid.uuid4()), "no.altinn.correspondence.correspondencepublished", "https://x", "",
                     "urn:altinn:resource:r", str(uuid.uuid4()), "", "{}") for _ in range(5)]  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON inbox WHEN NEW.id = '{page[2].id}' BEGIN"
                     f" SELECT RAISE(ABORT, '{REFUSAL}'); END")  # fmt: skip

    async def main() -> None:
        writer = InboxWriter(path, asyncio.get_running_loop())
        try:
            with pytest.raises(EventRefused, match=REFUSAL):
                await stored(writer.insert_events(page, "catchup"))
        finally:
            await asyncio.to_thread(writer.close)

    asyncio.run(main())
    assert stored_in_order(path) == [event.id for event in page[:2] + page[3:]]
