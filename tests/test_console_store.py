"""The store's reads behind the console's overview and correspondence pages, on each backend (`store_config`)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from receiver.config import StoreConfig, SubscriptionConfig
from receiver.store.correspondences import (
    LIST,
    Correspondence,
    get_attachment,
    get_correspondence,
    list_correspondences,
)
from receiver.store.inbox import insert_event
from receiver.store.interface import Database
from receiver.store.overview import Minute, per_minute, store_bytes
from receiver.store.state import list_cursors, move_cursor
from receiver.timeutil import now, parse_iso, to_iso
from tests.store_backends import event, run_on

CORRESPONDENCE = """
    INSERT INTO correspondences (correspondence_id, resource_id, sender, recipient, status, message_title, details,
                                 first_event_at, updated_at)
    VALUES (:id, 'urn:altinn:resource:r', :sender, :recipient, :status, :title, :details, :at, :at)
"""


async def add_correspondence(db: Database, cid: str, at: str, *, status: str = "Published", title: str = "",
                             sender: str = "urn:altinn:organization:identifier-no:991825827",
                             recipient: str = "urn:altinn:organization:identifier-no:312345678",
                             details: dict[str, object] | None = None) -> None:  # fmt: skip
    await db.execute(CORRESPONDENCE, {"id": cid, "sender": sender, "recipient": recipient, "status": status,
                                      "title": title, "details": json.dumps(details or {}), "at": at})  # fmt: skip


def test_per_minute_counts_what_arrived_and_what_finished_in_each_minute(store_config: StoreConfig) -> None:
    end = now()
    this_minute = to_iso(end)[:16]
    earlier = end - timedelta(minutes=5)
    too_old = end - timedelta(minutes=90)

    async def work(db: Database) -> list[Minute]:
        stored = [event(f"i{n}") for n in range(5)]
        for one in stored:
            await insert_event(db, one, "push")
        stamps = [to_iso(end), to_iso(end), to_iso(earlier), to_iso(earlier), to_iso(too_old)]
        statuses = ["pending", "done", "dead", "skipped", "done"]
        for one, stamp, status in zip(stored, stamps, statuses, strict=True):
            await db.execute("UPDATE inbox SET received_at = :at, updated_at = :at, status = :status WHERE id = :id",
                             {"at": stamp, "status": status, "id": one.id})  # fmt: skip
        return await per_minute(db, end)

    minutes = run_on(store_config, work)
    assert len(minutes) == 60
    assert minutes[-1].minute == this_minute
    assert parse_iso(minutes[0].minute + ":00Z") == parse_iso(this_minute + ":00Z") - timedelta(minutes=59)
    by_minute = {m.minute: (m.received, m.processed) for m in minutes}
    assert by_minute[this_minute] == (2, 1)
    assert by_minute[to_iso(earlier)[:16]] == (2, 2)
    assert sum(m.received for m in minutes) == 4


def test_store_bytes_is_the_size_of_what_is_stored(store_config: StoreConfig) -> None:
    async def work(db: Database) -> tuple[int, int]:
        before = await store_bytes(db)
        for n in range(300):
            await insert_event(db, event(f"instance-{n}" + "x" * 500), "push")
        return before, await store_bytes(db)

    before, after = run_on(store_config, work)
    assert before > 0
    assert after > before


def test_correspondences_page_newest_first_with_filters(store_config: StoreConfig) -> None:
    async def work(db: Database) -> dict[str, list[str]]:
        await add_correspondence(db, "c-old", "2026-11-30T10:00:00.000000Z", status="Read", title="Old news")
        await add_correspondence(db, "c-mid", "2026-11-30T11:00:00.000000Z", title="100% done_ok")
        await add_correspondence(db, "c-new", "2026-11-30T12:00:00.000000Z", recipient="urn:altinn:person:x")
        await db.execute("INSERT INTO correspondence_attachments (correspondence_id, attachment_id, file_name, size,"
                         " checksum, status, expiration_time, path, updated_at) VALUES ('c-mid', 'a1', 'f.pdf', 3, '',"
                         " 'Published', '', '', 'x')")  # fmt: skip

        async def ids(**selection: Any) -> list[str]:
            return [c.correspondence_id for c in await list_correspondences(db, **selection)]

        page = await list_correspondences(db)
        assert [(c.correspondence_id, c.attachments) for c in page] == [("c-new", 0), ("c-mid", 1), ("c-old", 0)]
        return {
            "read": await ids(status="Read"),
            "percent": await ids(q="0% d"),
            "underscore": await ids(q="e_o"),
            "person": await ids(q="person"),
            "second page": await ids(limit=2, offset=2),
        }

    found = run_on(store_config, work)
    assert found == {
        "read": ["c-old"],
        "percent": ["c-mid"],
        "underscore": ["c-mid"],  # `_` is a character, not LIKE's wildcard: "c-new" has no "e_o"
        "person": ["c-new"],
        "second page": ["c-old"],
    }


def test_a_correspondence_with_its_attachments_history_and_every_event_about_it(store_config: StoreConfig) -> None:
    history = [
        {"status": "Published", "statusChanged": "2026-11-30T10:00:02Z"},
        {"status": "Initialized", "statusChanged": "2026-11-30T10:00:01Z"},
    ]

    async def work(db: Database) -> Correspondence:
        await add_correspondence(db, "c-1", "2026-11-30T10:00:00.000000Z", details={"statusHistory": history})
        stored, waiting = event("c-1", "2026-11-30T10:00:02Z"), event("c-1", "2026-11-30T10:05:00Z")
        for one in (stored, waiting):
            await insert_event(db, one, "push")
        await db.execute("UPDATE inbox SET status = 'done' WHERE id = :id", {"id": stored.id})
        await db.execute("UPDATE inbox SET status = 'dead' WHERE id = :id", {"id": waiting.id})
        await db.execute(
            "INSERT INTO correspondence_events (event_id, correspondence_id, resourceinstance, type, time, received_at)"
            " VALUES (:id, 'c-1', 'c-1', 't', '2026-11-30T10:00:02.000000Z', 'x'),"
            " ('pruned-long-ago', 'c-1', 'attachment-1', 'attachmentpublished', '2026-11-30T09:59:00.000000Z', 'x')",
            {"id": stored.id},
        )
        await db.execute("INSERT INTO correspondence_attachments (correspondence_id, attachment_id, file_name, size,"
                         " checksum, status, expiration_time, path, updated_at) VALUES ('c-1', 'a1', 'f.pdf', 3, '',"
                         " 'Published', '', 'attachments/c-1/a1/f.pdf', 'x')")  # fmt: skip
        found = await get_correspondence(db, "c-1")
        assert await get_correspondence(db, "c-2") is None
        assert (await get_attachment(db, "c-1", "a1") or {})["path"] == "attachments/c-1/a1/f.pdf"
        assert await get_attachment(db, "c-2", "a1") is None
        assert found is not None
        assert [e.status for e in found.timeline] == ["", "done", "dead"]
        assert [e.event_id for e in found.timeline][1:] == [stored.id, waiting.id]
        return found

    found = run_on(store_config, work)
    assert found.row["recipient"] == "urn:altinn:organization:identifier-no:312345678"
    assert "details" not in found.row
    assert [h["status"] for h in found.status_history] == ["Initialized", "Published"]
    assert [a["file_name"] for a in found.attachments] == ["f.pdf"]


def test_catchup_cursors_are_listed_by_key(store_config: StoreConfig) -> None:
    async def work(db: Database) -> list[tuple[str, str]]:
        await move_cursor(db, SubscriptionConfig(resource="urn:altinn:resource:b"), "42")
        await move_cursor(db, SubscriptionConfig(resource="urn:altinn:resource:a", type="t"), "7")
        return [(c.resource, c.after) for c in await list_cursors(db)]

    assert run_on(store_config, work) == [("urn:altinn:resource:a", "7"), ("urn:altinn:resource:b", "42")]


FILL = """
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
    INSERT INTO correspondences (correspondence_id, resource_id, status, first_event_at, updated_at)
    SELECT 'c-' || i, 'urn:altinn:resource:r', 'Published', '2026-11-30T10:00:00.000000Z',
           strftime('%Y-%m-%dT%H:%M:%f000Z', '2026-11-30T10:00:00', '+' || ((i * 7919) % ?) || ' seconds')
    FROM n
"""


def page_steps(path: Path, rows: int) -> tuple[int, list[str]]:
    """SQLite virtual-machine steps (in tens) to read the first page of `rows` correspondences, and its ids."""
    run_on(StoreConfig(path=path), lambda db: db.execute("SELECT 1"))  # the schema, as `serve` makes it
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(FILL, (rows, rows))
        conn.commit()
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0

        conn.set_progress_handler(tick, 10)
        page = conn.execute(LIST.format(where="").replace(":limit", "50").replace(":offset", "0")).fetchall()
    return counted[0], [row[0] for row in page]


def test_a_page_of_correspondences_costs_the_same_with_20000_of_them_as_with_2000(tmp_path: Path) -> None:
    """Migration 9's index: the list reads its page in order. Sorting the table instead costs ten times as much
    with ten times the rows."""
    some, first = page_steps(tmp_path / "some.db", 2000)
    many, _ = page_steps(tmp_path / "many.db", 20000)
    newest = max(range(1, 2001), key=lambda i: (i * 7919) % 2000)
    assert len(first) == 50 and first[0] == f"c-{newest}"
    assert many <= some * 1.5, f"{many} steps with 20 000 correspondences, {some} with 2 000"
