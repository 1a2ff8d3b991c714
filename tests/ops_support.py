"""A real store for the operator command tests (tail, replay, stats), an SQLite file or a PostgreSQL schema: a config
pointing at it, events written with the inbox's own insert, and the command line run in-process through
`receiver.cli.main.main`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from receiver.cli.main import main
from receiver.config import Config, StoreConfig
from receiver.store.inbox import get_event, insert_event
from receiver.store.interface import Database
from receiver.store.records import InboxRecord, NewEvent
from receiver.timeutil import now, to_iso
from tests.store_backends import run_on, store_toml
from tests.support import write_config

T = TypeVar("T")

PUBLISHED = "no.altinn.correspondence.correspondencepublished"
READ = "no.altinn.correspondence.correspondencereceiverread"
RESOURCE = "urn:altinn:resource:ops-test"
OTHER_RESOURCE = "urn:altinn:resource:other-test"


class OpsStore:
    """A store and the config that names it: `store` (default: an SQLite file in `tmp_path`), or those of an existing
    `config`."""

    def __init__(self, tmp_path: Path, config: Config | None = None, *, store: StoreConfig | None = None) -> None:
        self._migrated = False
        if config is not None and config.source is not None:
            self.store, self.config = config.store, config.source
            return
        self.store = store or StoreConfig(path=tmp_path / "data" / "receiver.db")
        self.config = write_config(
            tmp_path / "receiver.toml", f"[receiver]\nallow_no_secret = true\n\n{store_toml(self.store)}"
        )

    @property
    def path(self) -> Path:
        """The SQLite store's file."""
        return self.store.path

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """`work` on the store, created first (as `serve` creates it) unless it is there."""
        migrate = not self._migrated and not (self.store.path.exists() and not self.store.url)
        self._migrated = True
        return run_on(self.store, work, migrate=migrate)

    def add(
        self,
        event_id: str,
        *,
        type_: str = PUBLISHED,
        resource: str = RESOURCE,
        instance: str = "",
        channel: str = "push",
    ) -> None:
        """Store an event as the webhook (or catch-up) does: status pending."""
        raw = {"specversion": "1.0", "id": event_id, "type": type_, "source": "https://platform.example/x"}
        event = NewEvent(event_id, type_, raw["source"], "", resource, instance or event_id, "", json.dumps(raw))
        self.run(lambda conn: insert_event(conn, event, channel))

    def set(self, event_id: str, **columns: Any) -> None:
        """Put an event in a state (status, attempts, last_error, received_at, ...), stamping `updated_at`."""
        columns.setdefault("updated_at", to_iso(now()))
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        sql = f"UPDATE inbox SET {assignments} WHERE id = :event_id"
        self.run(lambda conn: conn.execute(sql, {**columns, "event_id": event_id}))

    def received_ago(self, event_id: str, seconds: float) -> None:
        self.set(event_id, received_at=to_iso(now() - timedelta(seconds=seconds)))

    def get(self, event_id: str) -> InboxRecord:
        record = self.run(lambda conn: get_event(conn, event_id))
        assert record is not None, f"event {event_id} is not in the store"
        return record

    def cli(self, *args: str, stdin: str | None = None) -> Result:
        """`altinn-receiver ARGS --config <this store's config>`, in-process; stdout is not a terminal."""
        return CliRunner().invoke(main, [*args, "--config", str(self.config)], input=stdin, catch_exceptions=False)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
