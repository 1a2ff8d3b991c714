"""The store's two backends for the tests: an SQLite file in the test's folder, or a schema of its own in the test
run's PostgreSQL database (tests/conftest.py creates the database at 127.0.0.1:5432 and drops it at the end).

A test that takes the `store_config` fixture (tests/conftest.py) runs once per backend; `store_toml` gives the
config's `[store]` section for it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
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
    """`work` on the store (brought to this code's schema first, as `serve` does), in an event loop of its own."""
    backend = open_backend(store)

    async def main() -> T:
        if migrate:
            await asyncio.to_thread(backend.migrate)
        db = await backend.connect()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


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
