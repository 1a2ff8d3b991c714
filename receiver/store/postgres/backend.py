"""The PostgreSQL backend (`[store] url`): for an agency that runs several receivers on one store, or already runs
PostgreSQL and would rather back it up and watch it like its other databases.

Wake-ups across processes: a statement that adds events to the inbox notifies `altinn_receiver_inbox` with its
schema's name (a trigger, migration 1), and `listen` wakes the dispatcher on each such notification from its own
schema; when the listening connection is lost it is opened again, and meanwhile the dispatcher polls as on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

from receiver.store.errors import StoreError
from receiver.store.interface import POSTGRESQL, Backup, Checked, Database, Migrated, Writer
from receiver.store.migrations import Migration
from receiver.store.postgres import migrate
from receiver.store.postgres.connection import PostgresDatabase, connect, describe, display
from receiver.store.postgres.writer import PostgresWriter
from receiver.store.schema import SchemaState

log = logging.getLogger(__name__)

CHANNEL = "altinn_receiver_inbox"
LISTEN_RETRY = 5.0
"""Seconds between attempts to listen again after the connection was lost."""
POOL_SIZES = {"read_only": 2, "background": 8, "service": 4}


class PostgresBackend:
    """`Backend` for the database at `url` (a libpq URL; libpq's environment fills in what it leaves out)."""

    name = POSTGRESQL

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = display(url)

    def exists(self) -> bool:
        """Whether the database can be reached (an empty one is a store at schema version 0); StoreError when it
        cannot be."""
        migrate.open_sync(self.url).close()
        return True

    def missing(self) -> str:
        return f"store {self.location} cannot be reached: check store.url and that the database exists"

    def in_use(self) -> str:
        with migrate.open_sync(self.url) as conn:
            (free,) = conn.execute(migrate.TRY_SERVING).fetchone() or (False,)
            if free:
                conn.execute(migrate.STOP_SERVING)
        return "" if free else f"a receiver is serving from the store {self.location}: stop it first"

    def check_integrity(self) -> Checked | None:
        """Nothing to check from outside: the server checks its own pages (data checksums, when the cluster has
        them on), and a damaged page fails the statement that reads it with an error of its own."""
        return None

    def migrate(self) -> Migrated:
        return migrate.migrate(self.url)

    def create_if_missing(self) -> None:
        if self.pending()[0].version == 0:
            self.migrate()

    def pending(self) -> tuple[SchemaState, tuple[Migration, ...]]:
        return migrate.pending(self.url)

    async def connect(
        self, *, read_only: bool = False, background: bool = False, stalled_after: float | None = None
    ) -> Database:
        await asyncio.to_thread(migrate.check_version, self.url)
        size = POOL_SIZES["read_only" if read_only else "background" if background else "service"]
        return await PostgresDatabase.open(
            self.url, size=size, background=background, read_only=read_only, stalled_after=stalled_after
        )

    async def writer(self) -> Writer:
        writer = PostgresWriter(self.url)
        try:
            await writer.ready(0)
        except BaseException:
            await writer.aclose()
            raise
        return writer

    def backup(self, target: Path) -> Backup:
        raise StoreError(
            f"store backup copies an SQLite file; back up the PostgreSQL store {self.location} with pg_dump, e.g."
            f" pg_dump --format=custom --file={target} '{self.location}' (docs/operations.md)",
            transient=False,
        )

    async def listen(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        task = asyncio.create_task(self._listen(wake), name="store-listen")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop

    async def _listen(self, wake: Callable[[], None]) -> None:
        while True:
            try:
                conn = await connect(self.url)
            except StoreError as exc:
                log.warning("cannot listen for new events; polling meanwhile", extra={"error": str(exc)})
                await asyncio.sleep(LISTEN_RETRY)
                continue
            try:
                async with conn:
                    schema = (await (await conn.execute("SELECT current_schema() AS name")).fetchone() or {})["name"]
                    await conn.execute(f"LISTEN {CHANNEL}")
                    wake()  # what was committed before the LISTEN took effect
                    async for notice in conn.notifies():
                        if notice.payload == schema:
                            wake()
            except psycopg.Error as exc:
                log.warning("lost the connection listening for new events; polling meanwhile",
                            extra={"error": describe(exc)})  # fmt: skip
            await asyncio.sleep(LISTEN_RETRY)
