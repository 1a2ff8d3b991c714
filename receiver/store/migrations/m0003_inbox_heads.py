"""Migration 3: `inbox_heads`, the open events that may be the next to run of their `resourceinstance`, so that a
claim does not walk every open event of a busy instance (receiver/store/queue.py).

An instance's events run one at a time in order (`time`, else arrival; then `seq`). A *blocker* is an open event
that holds back the later ones: `pending` or `processing`. A `retrying` event holds back nothing (docs/handlers.md).
So an event can be the next to run only if no blocker of its instance comes before it: the instance's first
blocker, and the `retrying` events before it. Those are the *heads*; events without an instance are all heads.

`inbox_heads` holds every head (and a few former ones, see below) by its order key and `seq`, the order a claim
walks them in. Triggers on `inbox` keep it, so every writer — the webhook, the dispatcher, replay, the release before
this one during a rolling deploy — keeps it right:

- an event that opens (inserted, or replayed) is a head if no blocker comes before it;
- an event that stops blocking (done, dead, skipped, retrying) makes the instance's first blocker and the
  `retrying` events up to it heads, and leaves the table once it is closed;
- an event that starts blocking (a `retrying` one claimed, an event arriving before the first blocker) leaves the
  heads after it in place: they are no longer heads, and a claim steps over them (a look-up each) until they run or
  become heads again. Removing them would rewrite every `retrying` row of an instance at each of its retries.

An insert behind a blocker costs the webhook one look-up. The table is one b-tree, keyed the way the claim reads it,
because the webhook pays for every b-tree an event enters. With `time`, `received_at` or `resourceinstance`
rewritten on an open event (no code does it) the instance's rows are rebuilt.
"""

from __future__ import annotations

from receiver.store.migrations.base import Migration


def _order(row: str) -> str:
    """When the event happened, as a number: the order of an instance's events (receiver/store/queue.py)."""
    return f"COALESCE(julianday(NULLIF({row}.time, '')), julianday({row}.received_at))"


OPEN = "('pending', 'retrying', 'processing')"
BLOCKING = "('pending', 'processing')"
ORDER = _order("inbox").replace("inbox.", "")


def _blocker_before(row: str) -> str:
    """A blocker of `row`'s instance comes before `row`: two look-ups, each a range the index stops at (earlier in
    time; as early, earlier in arrival)."""
    key = _order(row)
    blockers = f"FROM inbox AS p WHERE p.resourceinstance = {row}.resourceinstance AND p.status IN {BLOCKING}"
    return (
        f"(EXISTS (SELECT 1 {blockers} AND {_order('p')} < {key})"
        f" OR EXISTS (SELECT 1 {blockers} AND {_order('p')} = {key} AND p.seq < {row}.seq))"
    )


def _add_if_head(row: str) -> str:
    return (
        f"INSERT OR IGNORE INTO inbox_heads (order_key, seq) SELECT {_order(row)}, {row}.seq"
        f" WHERE {row}.resourceinstance = '' OR NOT {_blocker_before(row)};"
    )


def _drop(row: str) -> str:
    return f"DELETE FROM inbox_heads WHERE order_key = {_order(row)} AND seq = {row}.seq;"


def _heads_after(row: str) -> str:
    """`row` no longer blocks: the instance's first blocker and the `retrying` events from `row` up to it are heads
    (when a blocker comes before `row` that is none of them, and the statements find nothing to add)."""
    first_blocker = (
        f"SELECT {_order('b')} FROM inbox AS b WHERE b.resourceinstance = {row}.resourceinstance"
        f" AND b.status IN {BLOCKING} ORDER BY {_order('b')}, b.seq LIMIT 1"
    )
    return (
        "INSERT OR IGNORE INTO inbox_heads (order_key, seq) SELECT order_key, seq FROM ("
        f"SELECT {_order('b')} AS order_key, b.seq FROM inbox AS b"
        f" WHERE b.resourceinstance = {row}.resourceinstance AND b.status IN {BLOCKING}"
        f" ORDER BY {_order('b')}, b.seq LIMIT 1)"
        f" WHERE NOT {_blocker_before(row)};\n"
        f"INSERT OR IGNORE INTO inbox_heads (order_key, seq) SELECT {_order('r')}, r.seq FROM inbox AS r"
        f" WHERE r.resourceinstance = {row}.resourceinstance AND r.status = 'retrying'"
        f" AND {_order('r')} >= {_order(row)} AND {_order('r')} <= COALESCE(({first_blocker}), 1e300)"
        f" AND r.seq <> {row}.seq AND NOT {_blocker_before('r')};"
    )


def _rebuild(instances: str) -> str:
    return (
        "DELETE FROM inbox_heads WHERE seq IN"
        f" (SELECT seq FROM inbox WHERE resourceinstance IN {instances});\n"
        f"INSERT OR IGNORE INTO inbox_heads (order_key, seq) SELECT {_order('e')}, e.seq FROM inbox AS e"
        f" WHERE e.resourceinstance IN {instances} AND e.status IN {OPEN}"
        f" AND (e.resourceinstance = '' OR NOT {_blocker_before('e')});"
    )


STATEMENTS: tuple[str, ...] = (
    # An instance's blockers in order: is there one before this event, which is its first.
    f"CREATE INDEX IF NOT EXISTS inbox_blocking ON inbox (resourceinstance, {ORDER}, seq) WHERE status IN {BLOCKING}",
    # An instance's retrying events in order: which are due before this one, which lie before its first blocker.
    f"CREATE INDEX IF NOT EXISTS inbox_retrying ON inbox (resourceinstance, {ORDER}, seq) WHERE status = 'retrying'",
    """
    CREATE TABLE IF NOT EXISTS inbox_heads (
        order_key REAL NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (order_key, seq)
    ) WITHOUT ROWID
    """,
    # The heads of the events already in the store.
    f"INSERT OR IGNORE INTO inbox_heads (order_key, seq) SELECT {_order('e')}, e.seq FROM inbox AS e"
    f" WHERE e.status IN {OPEN} AND (e.resourceinstance = '' OR NOT {_blocker_before('e')})",
    f"""
    CREATE TRIGGER IF NOT EXISTS inbox_heads_inserted AFTER INSERT ON inbox WHEN NEW.status IN {OPEN}
    BEGIN
        {_add_if_head("NEW")}
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS inbox_heads_reopened AFTER UPDATE OF status ON inbox
    WHEN OLD.status NOT IN {OPEN} AND NEW.status IN {OPEN}
    BEGIN
        {_add_if_head("NEW")}
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS inbox_heads_closed AFTER UPDATE OF status ON inbox
    WHEN OLD.status IN {OPEN} AND NEW.status NOT IN {OPEN}
    BEGIN
        {_drop("NEW")}
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS inbox_heads_unblocked AFTER UPDATE OF status ON inbox
    WHEN OLD.status IN {BLOCKING} AND NEW.status NOT IN {BLOCKING} AND NEW.resourceinstance != ''
    BEGIN
        {_heads_after("NEW")}
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS inbox_heads_deleted AFTER DELETE ON inbox WHEN OLD.status IN {OPEN}
    BEGIN
        {_drop("OLD")}
        {_heads_after("OLD")}
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS inbox_heads_moved AFTER UPDATE OF time, received_at, resourceinstance ON inbox
    WHEN (OLD.status IN {OPEN} OR NEW.status IN {OPEN})
     AND (OLD.resourceinstance IS NOT NEW.resourceinstance OR OLD.time IS NOT NEW.time
          OR OLD.received_at IS NOT NEW.received_at)
    BEGIN
        {_rebuild("(OLD.resourceinstance, NEW.resourceinstance)")}
    END
    """,
)

# PostgreSQL: the same table with the same rows, kept by two trigger functions that do what the triggers above do:
# one per INSERT statement, set-based over its rows (the webhook inserts many at once), one per updated or deleted row.
# The order key is `receiver_event_order(time, received_at)`, seconds since 1970 (SQLite's is in days: the table is
# the claim's own, and only its order matters); both columns always carry an offset, so the function is as immutable
# as an index needs. A row comparison `(key, seq) < (…)` is one range of the `(resourceinstance, key, seq)` indexes.
PG_ORDER = "receiver_event_order(time, received_at)"


def pg_add_heads(source: str, blocker: str = "receiver_blocker_before", where: str = "") -> str:
    """An INSERT of the events of `source` (`<table> AS e`) that are heads into `inbox_heads`: open, and no blocker
    of their instance before them, as the function `blocker` says (`where`: what else they meet, `AND …`)."""
    key = "receiver_event_order(e.time, e.received_at)"
    return (
        f"INSERT INTO inbox_heads (order_key, seq) SELECT {key}, e.seq FROM {source} WHERE e.status IN {OPEN}{where}"
        f" AND (e.resourceinstance = '' OR NOT {blocker}(e.resourceinstance, {key}, e.seq)) ON CONFLICT DO NOTHING"
    )


def pg_blocker_before(lock: str = "") -> str:
    """Whether a blocker of the instance comes before the event (the function's arguments `instance`, `key`,
    `event_seq`); `lock`, a locking clause for the blocker found."""
    return (
        f"EXISTS (SELECT 1 FROM inbox AS p WHERE p.resourceinstance = instance AND p.status IN {BLOCKING}"
        f" AND (receiver_event_order(p.time, p.received_at), p.seq) < (key, event_seq){lock})"
    )


def pg_add_if_head(blocker: str = "receiver_blocker_before") -> str:
    """`receiver_add_if_head`: the event is made a head when no blocker comes before it, as `blocker` says."""
    return f"""
    CREATE OR REPLACE FUNCTION receiver_add_if_head(instance text, key double precision, event_seq bigint)
    RETURNS void LANGUAGE sql AS $$
        INSERT INTO inbox_heads (order_key, seq) SELECT key, event_seq
        WHERE instance = '' OR NOT {blocker}(instance, key, event_seq)
        ON CONFLICT DO NOTHING
    $$
    """


POSTGRESQL_STATEMENTS: tuple[str, ...] = (
    """
    CREATE OR REPLACE FUNCTION receiver_event_order(event_time text, received_at text) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN extract(epoch FROM CAST(COALESCE(NULLIF(event_time, ''), received_at) AS timestamptz))
    """,
    f"CREATE INDEX IF NOT EXISTS inbox_blocking ON inbox (resourceinstance, {PG_ORDER}, seq)"
    f" WHERE status IN {BLOCKING}",
    f"CREATE INDEX IF NOT EXISTS inbox_retrying ON inbox (resourceinstance, {PG_ORDER}, seq) WHERE status = 'retrying'",
    """
    CREATE TABLE IF NOT EXISTS inbox_heads (
        order_key DOUBLE PRECISION NOT NULL,
        seq       BIGINT NOT NULL,
        PRIMARY KEY (order_key, seq)
    )
    """,
    f"""
    CREATE OR REPLACE FUNCTION receiver_blocker_before(instance text, key double precision, event_seq bigint)
    RETURNS boolean LANGUAGE sql STABLE
    RETURN {pg_blocker_before()}
    """,
    pg_add_if_head(),
    f"""
    CREATE OR REPLACE FUNCTION receiver_heads_after(instance text, key double precision, event_seq bigint)
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        first_key double precision;
        first_seq bigint;
    BEGIN
        IF receiver_blocker_before(instance, key, event_seq) THEN
            RETURN;
        END IF;
        SELECT receiver_event_order(b.time, b.received_at), b.seq INTO first_key, first_seq FROM inbox AS b
        WHERE b.resourceinstance = instance AND b.status IN {BLOCKING}
        ORDER BY receiver_event_order(b.time, b.received_at), b.seq LIMIT 1;
        IF first_seq IS NOT NULL THEN
            INSERT INTO inbox_heads (order_key, seq) VALUES (first_key, first_seq) ON CONFLICT DO NOTHING;
        END IF;
        INSERT INTO inbox_heads (order_key, seq)
        SELECT receiver_event_order(r.time, r.received_at), r.seq FROM inbox AS r
        WHERE r.resourceinstance = instance AND r.status = 'retrying'
          AND (receiver_event_order(r.time, r.received_at), r.seq) > (key, event_seq)
          AND (first_seq IS NULL OR (receiver_event_order(r.time, r.received_at), r.seq) < (first_key, first_seq))
        ON CONFLICT DO NOTHING;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION receiver_rebuild_heads(instance text) RETURNS void LANGUAGE sql AS $$
        DELETE FROM inbox_heads WHERE seq IN (SELECT seq FROM inbox WHERE resourceinstance = instance);
        {pg_add_heads("inbox AS e", where=" AND e.resourceinstance = instance")};
    $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION receiver_inbox_heads_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {pg_add_heads("inserted AS e")};
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION receiver_inbox_heads() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF OLD.status IN {OPEN} THEN
                DELETE FROM inbox_heads WHERE order_key = receiver_event_order(OLD.time, OLD.received_at)
                                          AND seq = OLD.seq;
                IF OLD.resourceinstance <> '' THEN
                    PERFORM receiver_heads_after(OLD.resourceinstance,
                                                 receiver_event_order(OLD.time, OLD.received_at), OLD.seq);
                END IF;
            END IF;
        ELSIF (OLD.status IN {OPEN} OR NEW.status IN {OPEN})
              AND (OLD.resourceinstance, OLD.time, OLD.received_at)
                  IS DISTINCT FROM (NEW.resourceinstance, NEW.time, NEW.received_at) THEN
            PERFORM receiver_rebuild_heads(OLD.resourceinstance);
            PERFORM receiver_rebuild_heads(NEW.resourceinstance);
        ELSIF OLD.status IS DISTINCT FROM NEW.status THEN
            IF OLD.status NOT IN {OPEN} AND NEW.status IN {OPEN} THEN
                PERFORM receiver_add_if_head(NEW.resourceinstance, receiver_event_order(NEW.time, NEW.received_at),
                                             NEW.seq);
            END IF;
            IF OLD.status IN {OPEN} AND NEW.status NOT IN {OPEN} THEN
                DELETE FROM inbox_heads WHERE order_key = receiver_event_order(NEW.time, NEW.received_at)
                                          AND seq = NEW.seq;
            END IF;
            IF OLD.status IN {BLOCKING} AND NEW.status NOT IN {BLOCKING} AND NEW.resourceinstance <> '' THEN
                PERFORM receiver_heads_after(NEW.resourceinstance, receiver_event_order(NEW.time, NEW.received_at),
                                             NEW.seq);
            END IF;
        END IF;
        RETURN NULL;
    END $$
    """,
    # The heads of the events already in the store.
    pg_add_heads("inbox AS e"),
    # The webhook's inserts many rows a statement: one set-based statement for them all, not a function call a row.
    "CREATE OR REPLACE TRIGGER inbox_heads_inserted AFTER INSERT ON inbox REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION receiver_inbox_heads_inserted()",
    "CREATE OR REPLACE TRIGGER inbox_heads AFTER DELETE OR UPDATE OF status, time, received_at, resourceinstance"
    " ON inbox FOR EACH ROW EXECUTE FUNCTION receiver_inbox_heads()",
)

MIGRATION = Migration(3, "inbox_heads", {"sqlite": STATEMENTS, "postgresql": POSTGRESQL_STATEMENTS})
