"""`altinn-receiver tail`: the event log from the store, optionally followed live."""

from __future__ import annotations

import asyncio
import os
import sys

import click

from receiver.cli.common import (
    config_option,
    echo_json,
    json_option,
    load,
    received_since,
    since_option,
    use_colour,
    with_store,
)
from receiver.store.inbox import EventFilter
from receiver.store.interface import Database
from receiver.store.operations import ChangeFeed, select_events
from receiver.store.records import InboxRecord
from receiver.store.schema import INBOX_STATUSES
from receiver.text import printable

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
# The table a person sees on a terminal: fixed widths, so that lines printed later (with -f) stay aligned too, and
# nothing past LINE_WIDTH. An event's error gets a line of its own, under STATUS; `events dead` shows it whole.
COLUMNS = (("TIME", 20), ("STATUS", 10), ("TRY", 3), ("TYPE", 36), ("EVENT", 36))
LINE_WIDTH = 120
GAP = "  "
ALTINN_TYPES = "no.altinn.correspondence."


def fit(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut shown by an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def table_header() -> str:
    return GAP.join(title.ljust(width) for title, width in COLUMNS).rstrip()


def human_lines(record: InboxRecord, *, colour: bool) -> list[str]:
    """One event for people: when it last changed (to the second), status, runs, type (without Altinn's common
    prefix), event id; and its last error on a second line when it has one."""
    stamp = record.updated_at[:19] + "Z" if len(record.updated_at) >= 19 else record.updated_at
    cells = [stamp, record.status, str(record.attempts), record.type.removeprefix(ALTINN_TYPES), record.id]
    cells = [printable(cell) for cell in cells]
    shown = [
        fit(cell, width).rjust(width) if title == "TRY" else fit(cell, width).ljust(width)
        for cell, (title, width) in zip(cells, COLUMNS, strict=True)
    ]
    if colour:
        shown[1] = click.style(shown[1], fg=STATUS_COLOURS.get(record.status), bold=record.status == "dead")
    lines = [GAP.join(shown).rstrip()]
    if record.last_error:
        indent = " " * (COLUMNS[0][1] + len(GAP))
        lines.append(indent + fit(f"error: {printable(record.last_error)}", LINE_WIDTH - len(indent)))
    return lines


def stop_on_closed_pipe() -> None:
    """The reader went away (`tail | head`): stop quietly instead of a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


async def run_tail(conn: Database, selection: EventFilter, lines: int | None, follow: bool, as_json: bool) -> None:
    human = not as_json and sys.stdout.isatty()
    colour = use_colour(sys.stdout)

    def show(record: InboxRecord) -> None:
        if human:
            for line in human_lines(record, colour=colour):
                click.echo(line)
        else:
            echo_json(record.to_json())

    if human:
        click.echo(table_header())

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
    second. Ctrl-C stops it (exit status 130). On a terminal it is a table that fits 120 columns, its status
    coloured (not with NO_COLOR set); when piped (or with --json) each line is one JSON object, the same shape as
    `events list --json`, for jq and friends. Runs beside the server: it only reads the store.
    """
    if lines is None and since is None:
        lines = DEFAULT_LINES
    config = load(config_path)
    selection = EventFilter(status=status, type_glob=type_glob, resource=resource, since=received_since(since))
    try:
        with_store(config, lambda conn: run_tail(conn, selection, lines, follow, as_json))
    except BrokenPipeError:
        stop_on_closed_pipe()
