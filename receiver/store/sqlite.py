"""The SQLite backend: the store as one file (`[store] path`), the embedded default.

Its parts are the modules beside this one: db.py (opening, `SqliteDatabase`), migrate.py, inbox.py (`InboxWriter`),
backup.py, and what only a file needs: integrity.py (SQLite's quick_check, an empty file) and files.py (the file
mode, files made whole before they have their name). This class only gathers them behind `Backend`
(receiver/store/interface.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from receiver.store import db, migrate
from receiver.store.backup import backup
from receiver.store.files import DEFAULT_FILE_MODE
from receiver.store.inbox import InboxWriter
from receiver.store.inbox_watch import InboxWatch
from receiver.store.integrity import empty_store
from receiver.store.interface import SQLITE, Backup, Checked, Database, Migrated, Writer
from receiver.store.migrations import Migration
from receiver.store.schema import SchemaState


class SqliteBackend:
    """`Backend` for the store file at `path`; the store, its WAL and its backups are created with `file_mode`."""

    name = SQLITE

    def __init__(self, path: Path, *, file_mode: int = DEFAULT_FILE_MODE) -> None:
        self.path = path
        self.file_mode = file_mode
        self.location = str(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def missing(self) -> str:
        return db.missing_store(self.path)

    def in_use(self) -> str:
        return db.held_by_another(self.path)

    def check_integrity(self) -> Checked | None:
        # A missing store is created by migrate, an empty file refused by it: nothing to check in either.
        if not self.path.is_file() or empty_store(self.path):
            return None
        seconds = db.check_integrity(self.path)
        return Checked(seconds, self.path.stat().st_size)

    def migrate(self) -> Migrated:
        return migrate.migrate(self.path, file_mode=self.file_mode)

    def create_if_missing(self) -> None:
        if not self.exists():
            self.migrate()

    def pending(self) -> tuple[SchemaState, tuple[Migration, ...]]:
        return migrate.pending(self.path)

    async def connect(
        self, *, read_only: bool = False, background: bool = False, stalled_after: float | None = None
    ) -> Database:
        return await db.connect(self.path, read_only=read_only, synchronous="NORMAL" if background else "FULL")

    async def writer(self) -> Writer:
        return InboxWriter(self.path, asyncio.get_running_loop())

    def backup(self, target: Path) -> Backup:
        return backup(self.path, target, mode=self.file_mode)

    async def listen(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """SQLite cannot tell one process of another's commits: a thread watches the file for them (inbox_watch.py)."""
        watch = InboxWatch(self.path, wake, asyncio.get_running_loop())
        watch.start()
        return watch.stop
