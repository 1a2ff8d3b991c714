"""Migration 10: on PostgreSQL, the heads of an insert's events are found in one statement, not by a function call per
event, with the same locking as migration 8.

Migration 8's trigger called `receiver_blocker_held` for every inserted event: a SQL function with a locking clause
cannot be inlined, so PostgreSQL set up and ran the function's query once per row, about 12 µs each, a third of what
a page of catch-up (1 000 events) costs the server besides the insert itself. Now the blocker look-up is a `LATERAL`
subquery of the trigger's one `INSERT … SELECT`: per event, the first blocker of its instance before it, in the order
of `inbox_blocking`, locked `FOR SHARE` (`LIMIT 1` after the lock, so a blocker that ended while the insert waited for
it is passed over and the next one tried, as before); an event without one is a head. Only the first blocker is
locked, as before, so an event behind a busy instance's thousands of waiting events locks one row, not all of them.

Measured on pages of 1 000 events of new instances, 100 into one store: the trigger took 11.8 to 14 ms a page, now 9.5
to 10.5 ms; one event inserted behind 8 000 waiting events of its instance costs what it did (bench/README.md). What
migration 8 says about concurrent writers holds unchanged (`tests/test_dispatch_heads_postgres.py` forces both
interleavings, and fails without the lock). SQLite's writers take turns: nothing changes.
"""

from __future__ import annotations

from receiver.store.migrations.base import Migration
from receiver.store.migrations.m0003_inbox_heads import BLOCKING, OPEN


def pg_add_heads_locking(source: str) -> str:
    """An INSERT of the events of `source` (`<table> AS e`) that are heads into `inbox_heads`, each event's first
    blocker locked `FOR SHARE` until the transaction ends (migration 8 says why)."""
    key = "receiver_event_order(e.time, e.received_at)"
    blocker_key = "receiver_event_order(p.time, p.received_at)"
    return f"""
        INSERT INTO inbox_heads (order_key, seq)
        SELECT {key}, e.seq FROM {source}
        LEFT JOIN LATERAL (
            SELECT p.seq FROM inbox AS p
            WHERE e.resourceinstance <> '' AND p.resourceinstance = e.resourceinstance AND p.status IN {BLOCKING}
              AND ({blocker_key}, p.seq) < ({key}, e.seq)
            ORDER BY {blocker_key}, p.seq LIMIT 1 FOR SHARE OF p
        ) AS blocker ON true
        WHERE e.status IN {OPEN} AND blocker.seq IS NULL
        ON CONFLICT DO NOTHING
    """


POSTGRESQL_STATEMENTS: tuple[str, ...] = (
    f"""
    CREATE OR REPLACE FUNCTION receiver_inbox_heads_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {pg_add_heads_locking("inserted AS e")};
        RETURN NULL;
    END $$
    """,
)

MIGRATION = Migration(10, "heads_inserted_in_one_statement", {"sqlite": (), "postgresql": POSTGRESQL_STATEMENTS})
