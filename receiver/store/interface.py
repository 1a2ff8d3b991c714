"""What the rest of the receiver knows of the store: a `Backend` (where the store is, opening it, migrating it, its
inbox writer) and the `Database` a backend opens (statements with named parameters, rows as dicts).

A backend implements these (SQLite: `receiver/store/sqlite.py`, the embedded default). Nothing above the store
imports one: `receiver/store/backends.py` picks it from `[store]`, and the modules that hold the store's SQL (inbox,
queue, state, operations, retention) take a `Database` and choose a statement by `Database.backend` where dialects
differ. docs/architecture.md says why this shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from receiver.store.migrations import Migration
from receiver.store.records import NewEvent
from receiver.store.schema import SchemaState

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

Params = Mapping[str, Any]
Row = dict[str, Any]
Call = Literal["execute", "execute_many", "fetch"]
"""Which of a `Database`'s calls `Database.guarded` makes."""


class Database(Protocol):
    """An open store: one connection (SQLite) or a small pool (PostgreSQL).

    Each call is one statement with named parameters (`:name`), run to its end, committed on its own unless inside
    `transaction()`. Every failure of the backend comes out as `StoreError` (`receiver/store/errors.py`), never as the
    driver's own exception, so callers need not know the backend to handle one. Calls may come from several
    coroutines at once.
    """

    backend: str
    """`SQLITE` or `POSTGRESQL`: which dialect the statements are written in."""

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; the number of rows it changed."""

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter set (each its own statement)."""

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run one statement (a query, or a write with RETURNING); its rows as {column: value}."""

    async def guarded(self, guard: str, guard_params: Params, call: Call, sql: str, params: Any) -> tuple[bool, Any]:
        """`sql` run as `call` runs it (`params`: a mapping, or the rows of `execute_many`), in a transaction that
        first runs the query `guard` and goes on only if it returns a row: (True, what `call` returns), or (False,
        None) with nothing done. Nothing of the other callers runs in between on SQLite (one step of the
        connection's thread); on PostgreSQL a guard that must hold until the commit locks its row."""

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """A `Database` whose statements run in one transaction on one connection, committed when the block ends
        (rolled back when it raises); the other callers' statements wait for it (SQLite) or use other connections."""

    async def close(self) -> None: ...


class Executes(Protocol):
    """What runs one statement with named parameters and commits it: a `Database`, or a `Writer` (in its next
    commit)."""

    def execute(self, sql: str, params: Params) -> Awaitable[object]: ...


class Writer(Protocol):
    """The webhook's and catch-up's way into the inbox: group commits, each insert answered once it is durable."""

    last_error: str
    """Why the last commit failed ("" once one works again): `/readyz` shows it."""

    broken: str
    """Why the store can no longer be written at all until an operator steps in and `serve` restarts (an SQLite file
    deleted, replaced or damaged underneath it); never cleared, "" while it is not."""

    @property
    def alive(self) -> bool:
        """Whether the writer still takes work (its thread or task has not ended)."""

    def insert_event(self, event: NewEvent, channel: str, traceparent: str = "") -> asyncio.Future[bool]:
        """True once the event is committed, False for an id already stored; `EventRefused` when the store refuses
        this event for its own values (the batch's others are stored), StoreError when it was not stored. A new
        event's `traceparent` (the span it arrived in) is stored with it (`inbox_traces`), in the same commit."""

    def insert_events(
        self, events: Sequence[NewEvent], channel: str, traceparent: str = ""
    ) -> list[asyncio.Future[bool]]:
        """`insert_event` for each of `events` (a page of catch-up), queued at once so that they commit together.
        A writer never settles a future before one queued before it (`inbox.stored` relies on it)."""

    def record_validation(self, event_id: str, subscription_id: str, source: str) -> asyncio.Future[bool]:
        """Record Altinn's validation handshake; False for a repeated event id."""

    def execute(self, sql: str, params: Params) -> asyncio.Future[bool]:
        """One statement with named parameters (as `Database.execute` takes it), committed by the writer after what
        was queued before it; True when it changed a row. A commit of such statements only does not wait for the disk:
        it is durable with the writer's next commit, and a crash before that may lose it, but never keeps it without
        everything committed before it. For what may be done again after a crash: catch-up's cursor, moved once its
        page is stored (on SQLite, through the writer also because a commit from another connection empties the
        writer's page cache, which the next page would read back from the file)."""

    def ready(self, fresh_for: float) -> asyncio.Future[bool]:
        """Whether a push would be stored now (`/readyz`): True, or the StoreError it would get. A commit that wrote
        within `fresh_for` seconds, with no failure since, answers for itself; otherwise a probe write does."""

    async def aclose(self) -> None:
        """Commit what is queued and close."""


@dataclass(frozen=True)
class Migrated:
    """What a migration run found (`before`) and what it applied, in order (nothing when the store was current)."""

    before: SchemaState
    applied: tuple[Migration, ...]

    @property
    def version(self) -> int:
        return self.applied[-1].version if self.applied else self.before.version


@dataclass(frozen=True)
class Checked:
    """An integrity check of the whole store that found nothing wrong: how long it took, and how large the store is."""

    seconds: float
    bytes: int


@dataclass(frozen=True)
class Backup:
    path: Path
    bytes: int
    schema_version: int
    events: int


class Backend(Protocol):
    """Where the store is and how to reach it: `[store] path` (SQLite) or `[store] url` (PostgreSQL)."""

    name: str
    location: str
    """The store as messages name it: the file, or the URL without its password."""

    def exists(self) -> bool:
        """Whether there is a store to open (a file; a database with the receiver's tables)."""

    def missing(self) -> str:
        """Why there is no store to open, and what to do: the error line when `exists()` is False."""

    def in_use(self) -> str:
        """Why the store must be left alone now, "" when it need not: another process has it open (SQLite), a
        receiver serves from it (PostgreSQL). `store copy` refuses such a source."""

    def check_integrity(self) -> Checked | None:
        """Refuse a damaged store (StoreError saying how to recover) before `serve` or `store migrate` migrates it;
        blocking. None when there is nothing to check: no store yet, or a backend whose server checks its own pages
        (PostgreSQL)."""

    def migrate(self) -> Migrated:
        """Bring the store (created when missing, where the backend can) to this code's schema; blocking, one process
        at a time. StoreVersionError when the store is newer than this code."""

    def create_if_missing(self) -> None:
        """A new store at this code's schema where there is none (no file; a schema without the receiver's tables),
        as `serve`'s first start makes it; an existing store is left as it is (commands that write refuse it when it
        is at another version, they never migrate it). Blocking."""

    def pending(self) -> tuple[SchemaState, tuple[Migration, ...]]:
        """The store's schema state and the migrations it lacks, changing nothing; blocking."""

    async def connect(
        self, *, read_only: bool = False, background: bool = False, stalled_after: float | None = None
    ) -> Database:
        """Open the existing store, refusing one at another schema version (StoreVersionError). `read_only`: for a
        command that only reads, beside a running server. `background`: for the dispatcher and retention, whose
        writes need not each wait for the disk (an outcome lost to a power cut means the event runs again).
        `stalled_after`: seconds after which a transaction this process leaves waiting between two statements (the
        process paused or starved that long) is ended by the server, releasing its row locks; PostgreSQL only (an
        SQLite transaction holds the file's write lock, which nothing takes from a paused process)."""

    async def writer(self) -> Writer:
        """The inbox writer for pushes and catch-up pages, on the running loop."""

    def backup(self, target: Path) -> Backup:
        """A consistent copy of the store at `target`; StoreError when the backend has its own tool for it."""

    async def listen(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call `wake` when another process commits new events, as well as the backend can tell (SQLite cannot: the
        dispatcher then polls); returns what stops listening (an async function)."""
