"""Migration 8: on PostgreSQL, an event that opens behind a blocker locks that blocker (`FOR SHARE`) until it commits,
so that the blocker's end and the event's arrival always see each other (migration 3 keeps `inbox_heads`).

Migration 3's triggers are right when writers take turns, as SQLite's do. On PostgreSQL two transactions run at
once, and in READ COMMITTED neither sees the other's uncommitted rows, so this interleaving lost an event for good:

1. a worker ends event E1 of an instance (`done`): its trigger looks for the instance's next blocker, finds none
   yet, and adds no head;
2. meanwhile the webhook inserts E2 of the same instance: its trigger sees E1 still `processing` (the worker has
   not committed), so E2 is no head either;
3. both commit. E2 is `pending`, not in `inbox_heads`, and no later write of the instance would ever add it: no
   claim finds it. (A three-replica test found one such event in about a thousand.)

Now the look-up that finds a blocker before the new event locks the blocker's row `FOR SHARE` (it is the first of
the index range that still blocks). Then either the blocker's end waits for the insert to commit, and its trigger,
whose statements each take a fresh snapshot, sees the new event and makes it a head; or the insert waits for the
blocker's end to commit, and PostgreSQL checks the lock's row again on its newest version: no longer a blocker, so
the look-up goes on, and the event is a head if nothing else blocks it. The same holds for an event replayed
(`dead` to `pending`) behind a blocker. Claims are not held up: they lock `FOR UPDATE SKIP LOCKED` and pass over a
row the webhook holds for its commit. A transaction that updates several rows at once (a worker's release at
shutdown) can deadlock with a webhook batch that locks blockers of the same instances; PostgreSQL then ends one of
the two, which is retried (the pushes get 503 and are sent again; the claims run again when their lease ends).

Last, events that the old triggers left behind are made heads again. SQLite's writers take turns: nothing changes.
"""

from __future__ import annotations

from receiver.store.migrations.base import Migration
from receiver.store.migrations.m0003_inbox_heads import pg_add_heads, pg_add_if_head, pg_blocker_before

POSTGRESQL_STATEMENTS: tuple[str, ...] = (
    f"""
    CREATE OR REPLACE FUNCTION receiver_blocker_held(instance text, key double precision, event_seq bigint)
    RETURNS boolean LANGUAGE sql VOLATILE
    RETURN {pg_blocker_before(" FOR SHARE OF p")}
    """,
    pg_add_if_head("receiver_blocker_held"),
    f"""
    CREATE OR REPLACE FUNCTION receiver_inbox_heads_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {pg_add_heads("inserted AS e", "receiver_blocker_held")};
        RETURN NULL;
    END $$
    """,
    # The events the race left out: open, not heads, and no blocker before them.
    pg_add_heads("inbox AS e"),
)

MIGRATION = Migration(8, "heads_under_concurrency", {"sqlite": (), "postgresql": POSTGRESQL_STATEMENTS})
