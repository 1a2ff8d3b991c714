"""Stores the way an unlucky operator or an attacker leaves them, for the tests/test_hostile_*.py suites: a real
migrated store with real events, then damaged where SQLite keeps them (a b-tree page of the inbox table, found from
the file's own page size and the table's root page), or its header overwritten."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from receiver.store.inbox import INSERT_EVENT, event_row
from receiver.store.migrate import migrate
from receiver.store.records import NewEvent
from tests.ingest_support import PUBLISHED, new_event

SQLITE_HEADER = b"SQLite format 3\x00"
INTERIOR_TABLE_PAGE = 0x05


def filled_store(path: Path, events: int = 300) -> list[str]:
    """A store migrated as `serve` creates it, holding `events` pending events of the size Altinn sends (ids in
    arrival order), closed so that everything is in the main file (no WAL)."""
    migrate(path)
    stamp = "2026-12-01T10:00:00.000000Z"
    rows = []
    for _ in range(events):
        event = new_event()
        rows.append(
            event_row(
                NewEvent(event["id"], PUBLISHED, event["source"], event["subject"], event["resource"],
                         event["resourceinstance"], event["time"], json.dumps(event)),
                "push",
                stamp,
            )
        )  # fmt: skip
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(INSERT_EVENT, rows)
    return [row["id"] for row in rows]


def _geometry(path: Path) -> tuple[int, int, int]:
    """The page size, the number of pages, and the inbox table's root page of the store at `path`."""
    with closing(sqlite3.connect(path)) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'inbox'").fetchone()
    return int(page_size), int(pages), int(root)


def inbox_pages(path: Path) -> tuple[int, int]:
    """The inbox table's root page and its last leaf (where new rows go; rows are in `seq` order)."""
    page_size, _, root = _geometry(path)
    with path.open("rb") as store:
        store.seek((root - 1) * page_size)
        header = store.read(12)
    if header[0] != INTERIOR_TABLE_PAGE:
        return root, root
    return root, int.from_bytes(header[8:12], "big")  # an interior page's right-most child pointer


def damage_page(path: Path, page: int, seed: int = 16) -> None:
    """Overwrite page `page` (1-based) of the store with random bytes after its 8-byte b-tree header, inside the file:
    the page's cell pointers and cells become garbage, its kind stays."""
    page_size, pages, _ = _geometry(path)
    assert 1 < page <= pages, f"page {page} is not a b-tree page inside the file (1 < page <= {pages})"
    start = (page - 1) * page_size + 8
    assert start + page_size - 8 <= path.stat().st_size
    with path.open("r+b") as store:
        store.seek(start)
        store.write(random.Random(seed).randbytes(page_size - 8))


def damage_header(path: Path) -> None:
    """Overwrite the file's header (its first 100 bytes) with text: SQLite no longer knows it as a database."""
    with path.open("r+b") as store:
        assert store.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        store.seek(0)
        store.write(b"not a store any more " * 5)


def quick_check_rows(path: Path) -> list[str]:
    """SQLite's own verdict on the file, read with a plain connection (or the error it raises instead)."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        try:
            return [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]


def new_id() -> str:
    return str(uuid.uuid4())
