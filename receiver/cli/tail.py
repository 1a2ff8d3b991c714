"""`altinn-receiver tail`: the event log from the store, optionally followed live."""

from __future__ import annotations

import asyncio
import os
import sys

import aiosqlite
import click

from receiver.cli.common import (
    config_option,
    echo_json,
    json_option,
    load,
    received_since,
    since_option,
    with_store,
)
from receiver.store.inbox import InboxRecord
from receiver.store.operations import ChangeFeed, EventFilter, select_events
from receiver.store.schema import INBOX_STATUSES

POLL_SECONDS = 0.5
DEFAULT_LINES = 20
STATUS_COLOURS = {
    "pending": "blue",
    "processing": "cyan",
    "retrying": "yellow",
    "done": "green",
    "dead": "red",
    "skipped": "bright_black",
}


def human_line(record: InboxRecord, *, colour: bool) -> str:
    """One event as a line for people: when it last changed, status, type, correspondence, id, attempts, error."""
    status = record.status.ljust(10)
    if colour:
        status = click.style(status, fg=STATUS_COLOURS.get(record.status), bold=record.status == "dead")
    parts = [record.updated_at, status, record.type, record.resourceinstance or "-", record.id]
    if record.attempts:
        parts.append(f"attempts={record.attempts}")
    if record.last_error:
        parts.append(f"error={record.last_error}")
    return "  ".join(parts)


def stop_on_closed_pipe() -> None:
    """The reader went away (`tail | head`): stop quietly instead of a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


async def run_tail(
    conn: aiosqlite.Connection, selection: EventFilter, lines: int | None, follow: bool, as_json: bool
) -> None:
    human = not as_json and sys.stdout.isatty()

    def show(record: InboxRecord) -> None:
        if human:
            click.echo(human_line(record, colour=True))
        else:
            echo_json(record.to_json())

    feed = ChangeFeed(conn, selection)
    if follow:
        await feed.start()  # before listing: a change in between shows twice rather than not at all
    for record in await select_events(conn, selection, last=lines):
        show(record)
    while follow:
        await asyncio.sleep(POLL_SECONDS)
        for record in await feed.poll():
            show(record)


@click.command("tail")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep running and print new events and status changes as they happen."
)
@click.option(
    "--type", "type_glob", metavar="GLOB", help="Only event types matching GLOB, e.g. '*.correspondencepublished'."
)
@click.option("--status", type=click.Choice(INBOX_STATUSES), help="Only events whose current status is this one.")
@click.option("--resource", metavar="URN", help="Only events for this resource (urn:altinn:resource:...).")
@since_option("Only events received within DURATION before now, e.g. 1h (default: the last 20 events).")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=None,
    help=f"Show the last N events first (default {DEFAULT_LINES}).",
)
@json_option
@config_option
def tail_command(
    follow: bool,
    type_glob: str | None,
    status: str | None,
    resource: str | None,
    since: float | None,
    lines: int | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Show the event log: the latest events in the store, oldest first, with their status.

    With -f it keeps following: new events and status changes (retries, done, dead, replays) appear within a
    second. Ctrl-C stops it. On a terminal each line is coloured by status; when piped (or with --json) each line is
    one JSON object, the same shape as `events list --json`, for jq and friends. Runs beside the server: it only
    reads the store.
    """
    if lines is None and since is None:
        lines = DEFAULT_LINES
    config = load(config_path)
    selection = EventFilter(status=status, type_glob=type_glob, resource=resource, since=received_since(since))
    try:
        with_store(config, lambda conn: run_tail(conn, selection, lines, follow, as_json))
    except KeyboardInterrupt:
        sys.exit(0)
    except BrokenPipeError:
        stop_on_closed_pipe()
