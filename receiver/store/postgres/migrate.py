"""The schema on PostgreSQL: which version a database holds, and applying the migrations (their `"postgresql"`
SQL, receiver/store/migrations/) to it.

The receiver's tables live in the connection's current schema (the first of `search_path`, `public` by default). A
schema without them is an empty store, version 0, even when it holds tables of other applications; one with some of
the receiver's table names but no `schema_migrations` is refused rather than taken over.

One process migrates at a time: the whole run is one transaction holding an advisory lock on the schema's name, so a
second `serve` or `store migrate` waits, then finds nothing to do; PostgreSQL's DDL is transactional, so a failed
migration changes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from receiver import __version__
from receiver.store.errors import StoreError
from receiver.store.interface import POSTGRESQL, Migrated
from receiver.store.migrations import LATEST, MIGRATIONS, Migration
from receiver.store.postgres.connection import CONNECT_TIMEOUT, describe, display, session
from receiver.store.schema import NEWEST_MIGRATION, SCHEMA_MIGRATIONS, SchemaState, StoreVersionError
from receiver.timeutil import now_iso

LOCK_SPACE = 0x41525356
"""The first key of the receiver's advisory locks (the second is a hash of the schema's name)."""
SERVING = 0x41525358
"""The first key of the lock a receiver holds (shared) on its store while its inbox writer is open, and `store copy`
takes (exclusive) to learn that none is; the second is a hash of the schema's name."""
_SERVING_KEY = f"{SERVING}, hashtext(current_schema())"
SERVE = f"SELECT pg_try_advisory_lock_shared({_SERVING_KEY}) AS free"
TRY_SERVING = f"SELECT pg_try_advisory_lock({_SERVING_KEY}) AS free"
STOP_SERVING = f"SELECT pg_advisory_unlock({_SERVING_KEY})"
RECEIVER_TABLES = frozenset(
    {"inbox", "validations", "correspondences", "correspondence_events", "correspondence_attachments",
     "subscriptions", "catchup_cursors", "receiver_state", "inbox_heads", "inbox_traces",
     "attempts"}
)  # fmt: skip
RECORD = "INSERT INTO schema_migrations (version, name, applied_at, receiver_version) VALUES (%s, %s, %s, %s)"


def open_sync(url: str) -> psycopg.Connection[Any]:
    """A blocking autocommit connection (migrations, version checks, `store copy`); StoreError when it cannot be."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        for statement in session():
            conn.execute(statement)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open store {display(url)}: {describe(exc)}") from exc
    return conn


def read_state(conn: psycopg.Connection[Any], url: str) -> SchemaState:
    """The schema state of the store in the connection's current schema (reads only)."""
    (schema,) = conn.execute("SELECT current_schema()").fetchone() or (None,)
    if schema is None:
        raise StoreError(
            f"{display(url)} has no schema to use: the schemas in its search_path do not exist (create it, or fix"
            " options=-csearch_path in store.url)",
            transient=False,
        )
    found = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    tables = {str(row[0]) for row in found}
    if "schema_migrations" in tables:
        newest = conn.execute(NEWEST_MIGRATION).fetchone()
        if newest is not None:
            return SchemaState(int(newest[0]), str(newest[1]), True)
    if tables & RECEIVER_TABLES:
        raise StoreError(
            f"{display(url)} is not an altinn-receiver store: schema {schema} has tables named like the receiver's"
            f" ({', '.join(sorted(tables & RECEIVER_TABLES))}) but no schema_migrations; give the receiver a"
            " database or schema of its own",
            transient=False,
        )
    return SchemaState(0, "", False)


def check_version(url: str) -> None:
    """Refuse the store unless its schema is this code's (StoreVersionError)."""
    with open_sync(url) as conn:
        state = _read(conn, url)
    if state.version != LATEST:
        raise StoreVersionError(display(url), state)


def pending(url: str) -> tuple[SchemaState, tuple[Migration, ...]]:
    with open_sync(url) as conn:
        state = _read(conn, url)
    if state.version > LATEST:
        raise StoreVersionError(display(url), state)
    return state, MIGRATIONS[state.version :]


def migrate(url: str, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> Migrated:
    """Bring the store to this code's schema, `migrations`; StoreVersionError when it is newer."""
    with open_sync(url) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (LOCK_SPACE,))
                state = read_state(conn, url)
                if state.version > migrations[-1].version:
                    raise StoreVersionError(display(url), state)
                todo = migrations[state.version :]
                if todo:
                    conn.execute(SCHEMA_MIGRATIONS)
                    stamp = now_iso()
                    for migration in todo:
                        for statement in migration.statements(POSTGRESQL):
                            conn.execute(statement)
                        conn.execute(RECORD, (migration.version, migration.name, stamp, __version__))
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate store {display(url)}: {describe(exc)}", transient=False) from exc
    return Migrated(state, todo)


def _read(conn: psycopg.Connection[Any], url: str) -> SchemaState:
    try:
        return read_state(conn, url)
    except psycopg.Error as exc:
        raise StoreError(f"cannot read store {display(url)}: {describe(exc)}") from exc
