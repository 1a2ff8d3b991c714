"""`altinn-receiver events`: reading the inbox (list, show). Operators' commands on it join this group."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiosqlite
import click

from receiver.commands.common import config_option, echo_json, echo_json_lines, echo_table, json_option, load
from receiver.commands.events_ops import dead_command, replay_command
from receiver.store import db
from receiver.store.inbox import InboxRecord, get_event, list_events
from receiver.store.schema import INBOX_STATUSES

LIST_COLUMNS = ["received_at", "status", "attempts", "type", "resourceinstance", "id"]


async def open_store(path: Path) -> aiosqlite.Connection:
    """The store for reading; a missing file is an error (reading must not create an empty store)."""
    if not path.is_file():
        click.echo(f"error: store {path} does not exist; check [store] path or start `altinn-receiver serve`", err=True)
        sys.exit(1)
    try:
        return await db.connect(path)
    except db.StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group("events")
def events_group() -> None:
    """Read the inbox: every event received by push or catch-up, and where it is in its life."""


@events_group.command("list")
@config_option
@click.option("--status", type=click.Choice(INBOX_STATUSES), help="Only events with this status.")
@click.option(
    "--type", "type_glob", metavar="TYPE", help="Only events of this type; * and ? match (e.g. '*published')."
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many events.")
@json_option
def list_command(config_path: str | None, status: str | None, type_glob: str | None, limit: int, as_json: bool) -> None:
    """List inbox events, newest first.

    With --json, one JSON object per event per line (JSON lines).
    """
    config = load(config_path)

    async def run() -> list[InboxRecord]:
        conn = await open_store(config.store.path)
        try:
            return await list_events(conn, status=status, type_glob=type_glob, limit=limit)
        finally:
            await conn.close()

    records = asyncio.run(run())
    if as_json:
        echo_json_lines(record.to_json() for record in records)
    elif records:
        echo_table([record.to_json() for record in records], LIST_COLUMNS)
    else:
        click.echo("no events match", err=True)


@events_group.command("show")
@config_option
@click.argument("event_id")
@json_option
def show_command(config_path: str | None, event_id: str, as_json: bool) -> None:
    """Show one inbox event by its CloudEvent id, with the event as it was received."""
    config = load(config_path)

    async def run() -> InboxRecord | None:
        conn = await open_store(config.store.path)
        try:
            return await get_event(conn, event_id)
        finally:
            await conn.close()

    record = asyncio.run(run())
    if record is None:
        click.echo(f"error: no event with id {event_id!r} in the inbox ({config.store.path})", err=True)
        sys.exit(1)
    data = record.to_json(with_event=True)
    if as_json:
        echo_json(data)
        return
    event = data.pop("event")
    width = max(len(key) for key in data)
    for key, value in data.items():
        click.echo(f"{key.ljust(width)}  {value}")
    click.echo("event:")
    click.echo(json.dumps(event, indent=2, ensure_ascii=False))


events_group.add_command(replay_command)
events_group.add_command(dead_command)
