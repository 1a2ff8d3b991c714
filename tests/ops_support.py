"""A real store file for the operator command tests (tail, replay, stats): a config pointing at it, events written
with the inbox's own insert, and the command line run in-process through `receiver.cli.main.main`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from receiver.cli.main import main
from receiver.config import Config
from receiver.store.db import connect
from receiver.store.inbox import get_event, insert_event
from receiver.store.interface import Database
from receiver.store.migrate import migrate
from receiver.store.records import InboxRecord, NewEvent
from receiver.timeutil import now, to_iso
from tests.support import write_config

T = TypeVar("T")

PUBLISHED = "no.altinn.correspondence.correspondencepublished"
READ = "no.altinn.correspondence.correspondencereceiverread"
RESOURCE = "urn:altinn:resource:ops-test"
OTHER_RESOURCE = "urn:altinn:resource:other-test"


class OpsStore:
    """A store file and the config that names it: a new one in `tmp_path`, or those of an existing `config`."""

    def __init__(self, tmp_path: Path, config: Config | None = None) -> None:
        if config is not None and config.source is not None:
            self.path, self.config = config.store.path, config.source
            return
        self.path = tmp_path / "data" / "receiver.db"
        self.config = write_config(
            tmp_path / "receiver.toml",
            f'[receiver]\nallow_no_secret = true\n\n[store]\npath = "{self.path}"\n',
        )

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def with_connection() -> T:
            if not self.path.exists():
                await asyncio.to_thread(migrate, self.path)  # as `serve` creates it
            conn = await connect(self.path)
            try:
                return await work(conn)
            finally:
                await conn.close()

        return asyncio.run(with_connection())

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
