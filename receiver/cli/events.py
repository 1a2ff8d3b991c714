"""`altinn-receiver events`: reading the inbox (list, show). Operators' commands on it join this group."""

from __future__ import annotations

import json
from typing import Any

import click

from receiver.cli.common import (
    Group,
    config_option,
    echo_json,
    echo_listing,
    echo_table,
    fail,
    json_option,
    load,
    with_store,
)
from receiver.cli.dead_letters import dead_command, replay_command
from receiver.store.attempts import Attempt, event_attempts
from receiver.store.backends import open_backend
from receiver.store.inbox import EventFilter, get_event, list_events
from receiver.store.interface import Database
from receiver.store.records import InboxRecord
from receiver.store.schema import INBOX_STATUSES
from receiver.text import printable
from receiver.timeutil import parse_iso

LIST_COLUMNS = ["received_at", "status", "attempts", "type", "resourceinstance", "id"]
HISTORY_COLUMNS = ["attempt", "started_at", "took", "step", "outcome", "http_status", "error"]


@click.group("events", cls=Group)
def events_group() -> None:
    """Read the inbox and act on it: list and show events, list the dead ones, replay them.

    The inbox holds every event received by push or catch-up, with where it is in its life (pending, processing,
    retrying, done, dead, skipped).
    """


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
    records = with_store(config, lambda conn: list_events(conn, EventFilter(status, type_glob), limit=limit))
    echo_listing([record.to_json() for record in records], LIST_COLUMNS, as_json=as_json, empty="no events match")


@events_group.command("show")
@config_option
@click.argument("event_id")
@json_option
def show_command(config_path: str | None, event_id: str, as_json: bool) -> None:
    """Show one inbox event by its CloudEvent id, with its attempt history.

    Its state; its history, each run of its pipeline (when, the step it reached, how long it took, how it ended, the
    error and the HTTP status); and the event as it was received (unless retention pruned it).

    With --json, one object: `attempts` is the count, `history` the runs, oldest first.
    """
    config = load(config_path)

    async def read(db: Database) -> tuple[InboxRecord | None, list[Attempt]]:
        return await get_event(db, event_id), await event_attempts(db, event_id)

    record, history = with_store(config, read)
    if record is None:
        where = open_backend(config.store).location
        fail(f"no event with id {event_id!r} in the inbox ({where}); `events list` shows the ids")
    data = record.to_json(with_event=True)
    if as_json:
        echo_json({**data, "history": [attempt.to_json() for attempt in history]})
        return
    event = data.pop("event")
    width = max(len(key) for key in data)
    for key, value in data.items():
        click.echo(f"{key.ljust(width)}  {printable(str(value))}")
    if history:
        click.echo("history:")
        echo_table([history_row(attempt) for attempt in history], HISTORY_COLUMNS)
    else:
        click.echo("history: no run has finished yet")
    if event is None:
        click.echo("event: pruned by retention ([retention] done): the payload is gone; the id and the rest stay")
        return
    click.echo("event:")
    for line in json.dumps(event, indent=2, ensure_ascii=False).split("\n"):  # not splitlines: U+2028 is in text
        click.echo(printable(line))


def history_row(attempt: Attempt) -> dict[str, Any]:
    """An attempt as the history table shows it: how long it took instead of when it finished."""
    seconds = (parse_iso(attempt.finished_at) - parse_iso(attempt.started_at)).total_seconds()
    took = f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
    return {**attempt.to_json(), "took": took}


events_group.add_command(replay_command)
events_group.add_command(dead_command)
