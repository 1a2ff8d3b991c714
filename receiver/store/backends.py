"""Which backend `[store]` names: the one place that knows both, so that nothing above the store needs to."""

from __future__ import annotations

from receiver.config import StoreConfig
from receiver.store.interface import Backend
from receiver.store.sqlite import SqliteBackend


def open_backend(store: StoreConfig) -> Backend:
    """The backend of the config's store: the PostgreSQL database at `[store] url`, else the SQLite file at
    `[store] path`. PostgreSQL's driver is loaded only then (it is an extra, `altinn-receiver[postgres]`, checked
    when the config is read)."""
    if store.url:
        from receiver.store.postgres.backend import PostgresBackend

        return PostgresBackend(store.url)
    return SqliteBackend(store.path, file_mode=store.mode)
