"""`altinn-receiver catchup`: read what Altinn's pull API holds after each subscription's cursor into the inbox."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import click

from receiver.altinn import AltinnClients
from receiver.cli.common import config_option, echo_listing, fail_config, json_option, load, using_store
from receiver.cli.serve import SWITCH_INTERVAL_S
from receiver.config import Config, ConfigError
from receiver.store.backends import open_backend
from receiver.store.inbox import stored
from receiver.store.records import NewEvent
from receiver.sync.catchup import RunResult, run_all
from receiver.text import printable

COLUMNS = ["resource", "subject", "type", "pages", "read", "enqueued", "duplicates", "invalid", "skipped", "after"]


class Counter:
    """Progress on stderr: one line rewritten in place on a terminal, a line per page otherwise."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, result: RunResult) -> None:
        line = (
            f"{result.key.resource}: {result.pages} pages, {result.read} events read, {result.enqueued} new,"
            f" {result.duplicates} already there"
        )
        click.echo(("\r" + line) if self.live else line, err=True, nl=not self.live)

    def done(self) -> None:
        if self.live:
            click.echo("", err=True)


async def catch_up_now(config: Config, progress: Callable[[RunResult], None]) -> list[RunResult]:
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # the store's writer thread gets the GIL back as soon as under `serve`
    async with AltinnClients.from_config(config) as clients:
        backend = open_backend(config.store)
        await asyncio.to_thread(backend.create_if_missing)
        conn = await backend.connect()
        writer = await backend.writer()

        async def insert(events: list[NewEvent]) -> list[bool]:
            return await stored(writer.insert_events(events, "catchup"))

        try:
            return await run_all(config, conn, clients, insert, on_page=progress, cursors=writer)
        finally:
            await writer.aclose()
            await conn.close()


@click.command(
    "catchup", short_help="Catch up now: read what Altinn's pull API holds after each cursor into the inbox."
)
@config_option
@json_option
def catchup_command(config_path: str | None, as_json: bool) -> None:
    """Catch up now: page Altinn's pull API from each subscription's cursor to the end and put what is new into
    the inbox (channel "catchup"; ids already there are skipped). `serve` does this at start and every
    [catchup] interval; run it by hand after a long outage or to see what the cursors do.

    The first run for a subscription follows [catchup] start: "now" only moves the cursor to the current end,
    "beginning" enqueues everything in Altinn's 90-day retention. Exits 1 if a subscription could not be read.
    """
    config = load(config_path)
    if not config.subscriptions:
        fail_config(ConfigError("subscriptions", "none configured: add a [[subscriptions]] table with a resource"))
    progress = Counter()
    try:
        results = using_store(config, lambda: asyncio.run(catch_up_now(config, progress)))
    except ConfigError as error:
        fail_config(error)
    progress.done()
    echo_listing([r.to_json() for r in results], COLUMNS, as_json=as_json, empty="no subscriptions to catch up")
    for result in results:
        if result.error:
            click.echo(f"error: {result.key.resource}: {printable(result.error)}", err=True)
        if result.stuck_pushes:
            click.echo(
                f"warning: {result.key.resource}: the cursor looks stuck ({result.stuck_pushes} pushes arrived since"
                " it last moved, the pull API returned nothing). A subject filter avoids this: docs/subscriptions.md",
                err=True,
            )
    if any(r.error for r in results):
        sys.exit(1)
