"""`altinn-receiver store copy`: a whole store into another one (SQLite to PostgreSQL, or between databases), for
moving up (docs/operations.md).

Every table of the receiver's is copied row for row, keys included (the `seq` of the inbox and of `attempts` too):
every status, attempt count and history, cursor, subscription and correspondence row. Only the leases are reset: a
claim of the source's dispatcher means nothing in the target, and an event it held (`processing`) is taken up again
there like one whose lease ran out. `inbox_heads` is not copied: the target's triggers build it as the inbox's rows
arrive.

The copy goes table by table in batches, in the order of each table's primary key, each batch one transaction of
the target that also records how far it got (`receiver_state`, key `store_copy:<table>`). Run again after an
interruption, it carries on after the last batch committed. At the end the rows of each table are counted on both
sides and must agree; then the marks are removed. The source must not change meanwhile: a store that a process
has open (a running receiver) is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from receiver.store.errors import StoreError
from receiver.store.interface import POSTGRESQL, Database, Row

BATCH = 1000
MARK = "store_copy:"

TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("inbox", ("seq",)),
    ("validations", ("event_id",)),
    ("correspondences", ("correspondence_id",)),
    ("correspondence_events", ("event_id",)),
    ("correspondence_attachments", ("correspondence_id", "attachment_id")),
    ("subscriptions", ("altinn_id",)),
    ("catchup_cursors", ("resource", "subject", "type")),
    ("receiver_state", ("key",)),
    ("inbox_traces", ("id",)),
    ("attempts", ("seq",)),
)
"""The receiver's tables and their primary keys, in the order they are copied."""

UNLEASED = {"lease_until": "", "lease_owner": ""}
NUMBERED = ("inbox", "attempts")
"""The tables whose `seq` the backend numbers: on PostgreSQL, numbering goes on after the copied rows."""
NEXT_SEQ = "SELECT setval(pg_get_serial_sequence('{0}', 'seq'), COALESCE(MAX(seq), 0) + 1, false) FROM {0}"


@dataclass(frozen=True)
class Copied:
    """What a copy did: rows per table (all of them, also those an earlier run copied), and whether it resumed."""

    rows: dict[str, int]
    resumed: bool


async def count_rows(db: Database) -> dict[str, int]:
    """Each table's rows (the copy's own marks left out)."""
    counts = {}
    for table, _ in TABLES:
        where = f" WHERE key NOT LIKE '{MARK}%'" if table == "receiver_state" else ""
        [row] = await db.fetch(f"SELECT COUNT(*) AS n FROM {table}{where}")
        counts[table] = int(row["n"])
    return counts


async def _marks(target: Database) -> dict[str, tuple[Any, ...]]:
    rows = await target.fetch(f"SELECT key, value FROM receiver_state WHERE key LIKE '{MARK}%'")
    return {str(row["key"]).removeprefix(MARK): tuple(json.loads(row["value"])) for row in rows}


async def copy_store(source: Database, target: Database, progress: Callable[[int], None] = lambda rows: None) -> Copied:
    """Copy `source` into `target` (both at this code's schema; the target empty, or holding an interrupted copy
    of this source); `progress(rows)` after each batch. StoreError when the target holds another store's rows or
    the counts differ at the end."""
    marks = await _marks(target)
    if not marks and any((await count_rows(target)).values()):
        raise StoreError(
            "the target already holds a store (and no interrupted copy to carry on): copy into an empty database",
            transient=False,
        )
    for table, key in TABLES:
        await _copy_table(source, target, table, key, marks.get(table), progress)
    if target.backend == POSTGRESQL:  # new events and attempts are numbered after the copied ones
        for table in NUMBERED:
            await target.fetch(NEXT_SEQ.format(table))
    expected, found = await count_rows(source), await count_rows(target)
    if expected != found:
        differing = ", ".join(f"{t}: {expected[t]} in the source, {found[t]} copied" for t in expected
                              if expected[t] != found[t])  # fmt: skip
        raise StoreError(f"the copy is not complete ({differing}): run store copy again", transient=False)
    await target.execute(f"DELETE FROM receiver_state WHERE key LIKE '{MARK}%'")
    return Copied(found, resumed=bool(marks))


async def _copy_table(
    source: Database,
    target: Database,
    table: str,
    key: tuple[str, ...],
    after: tuple[Any, ...] | None,
    progress: Callable[[int], None],
) -> None:
    columns = ", ".join(key)
    marks = ", ".join(f":k{n}" for n in range(len(key)))
    while True:
        where = f" WHERE ({columns}) > ({marks})" if after is not None else ""
        params = dict(zip((f"k{n}" for n in range(len(key))), after or (), strict=False))
        batch = await source.fetch(f"SELECT * FROM {table}{where} ORDER BY {columns} LIMIT {BATCH}", params)
        if not batch:
            return
        after = tuple(batch[-1][column] for column in key)
        async with target.transaction() as tx:
            await tx.execute_many(_insert(table, batch[0]), [_unleased(table, row) for row in batch])
            await tx.execute(
                "INSERT INTO receiver_state (key, value, updated_at) VALUES (:key, :value, '')"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                {"key": MARK + table, "value": json.dumps(after)},
            )
        progress(len(batch))


def _insert(table: str, row: Row) -> str:
    names = list(row)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + name for name in names)})"
        " ON CONFLICT DO NOTHING"
    )


def _unleased(table: str, row: Row) -> Row:
    return {**row, **UNLEASED} if table == "inbox" else row
