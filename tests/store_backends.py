"""The store's two backends for the tests: an SQLite file in the test's folder, or a schema of its own in the test
run's PostgreSQL database (tests/conftest.py creates the database at 127.0.0.1:5432 and drops it at the end).

A test that takes the `store_config` fixture (tests/conftest.py) runs once per backend; `store_toml` gives the
config's `[store]` section for it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg

from receiver.config import StoreConfig
from receiver.store.backends import open_backend
from receiver.store.interface import Backend, Database
from receiver.store.records import NewEvent

T = TypeVar("T")

BACKENDS = ("sqlite", "postgresql")
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"
"""The test run's PostgreSQL server (trust authentication for `postgres` on loopback, as CI's machine has it)."""


def new_database(server: str = POSTGRES_SERVER) -> str:
    """Create a database of its own for this test run; its URL."""
    name = f"altinn_receiver_test_{secrets.token_hex(4)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def drop_database(url: str) -> None:
    server, _, name = url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_schema(database: str) -> str:
    """A fresh schema in `database`; the URL that puts the receiver's tables there."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{database}?options={quote(f'-csearch_path={schema}')}"


def new_store_config(backend: str, tmp_path: Path, database: str) -> StoreConfig:
    if backend == "sqlite":
        return StoreConfig(path=tmp_path / "data" / "receiver.db")
    return StoreConfig(url=new_schema(database))


def store_toml(store: StoreConfig) -> str:
    """The `[store]` section naming this store."""
    key, value = ("url", store.url) if store.url else ("path", str(store.path))
    return f"[store]\n{key} = {json.dumps(value)}\n"


def run_on(store: StoreConfig, work: Callable[[Database], Awaitable[T]], *, migrate: bool = True) -> T:
    """`work` on the store (brought to this code's schema first, as `serve` does): on an SQLite file in an event loop
    and on a connection of its own, closed after it (a test may need the file free); on PostgreSQL on the test's
    `Session` with the store."""
    backend = open_backend(store)
    if store.url:
        if migrate:
            backend.migrate()
        with _opening:
            session = _sessions.get(store.url) or _sessions.setdefault(store.url, Session(backend))
        return session.run(work)

    async def main() -> T:
        if migrate:
            await asyncio.to_thread(backend.migrate)
        db = await backend.connect()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


class Session:
    """A PostgreSQL store open for a test's many small reads and writes: one pool, on an event loop in a thread of its
    own, for all of them (opening a pool for each, with its version check, took longer than most statements)."""

    def __init__(self, backend: Backend) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-store-session", daemon=True)
        self._thread.start()
        try:
            self._db = self._call(backend.connect())
        except BaseException:
            self._stop()
            raise

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def call() -> T:
            return await work(self._db)

        return self._call(call())

    def close(self) -> None:
        try:
            self._call(self._db.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


_sessions: dict[str, Session] = {}
_opening = threading.Lock()


def close_sessions() -> None:
    """Close the sessions the test opened (tests/conftest.py, after each test)."""
    while _sessions:
        _sessions.popitem()[1].close()


def rows(store: StoreConfig, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of one query on the store (named parameters)."""
    return run_on(store, lambda db: db.fetch(sql, params), migrate=False)


def statuses(store: StoreConfig) -> dict[str, str]:
    return {row["id"]: row["status"] for row in rows(store, "SELECT id, status FROM inbox")}


def backend_of(store: StoreConfig) -> Backend:
    return open_backend(store)


def event(instance: str, time: str = "", *, type_: str = "t") -> NewEvent:
    """An event of `instance` (its `resourceinstance`), at `time` when given."""
    event_id = str(uuid.uuid4())
    raw = {"specversion": "1.0", "id": event_id, "type": type_, "source": "s", "resourceinstance": instance}
    return NewEvent(event_id, type_, "s", "", "urn:altinn:resource:r", instance, time, json.dumps(raw))
