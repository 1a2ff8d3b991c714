"""`altinn-receiver demo`: the whole loop on this machine, against the built-in Altinn simulator."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from receiver.cli.common import echo_table
from receiver.observability.logs import setup_logging
from receiver.onboarding.demo import DemoError, run_demo


def log_to(file: Path) -> None:
    """The receiver's and the simulator's JSON log lines go to `file`, so the terminal shows only the story."""
    setup_logging("info", logging.FileHandler(file, encoding="utf-8"))


@click.command("demo")
@click.option("--events", "count", default=20, show_default=True, type=click.IntRange(1, 2000),
              help="How many correspondences the simulator sends (each with attachments).")  # fmt: skip
@click.option(
    "--dir",
    "directory",
    default="demo-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its store, config, key, attachments and log (emptied first; only a demo folder).",
)
def demo_command(count: int, directory: Path) -> None:
    """Run the whole loop on this machine in well under a minute, no Altinn account needed.

    Starts the Altinn simulator and a receiver (`serve`, as deployed) on free loopback ports with a generated
    Maskinporten key,
    subscribes (as the recipient organisation), has the simulator send correspondences with attachments, stops
    the receiver for a moment so that the missed events come back through catch-up, and ends with a summary.
    Exit status 0 when every event was processed, 1 otherwise.
    """
    directory = directory.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        click.echo(f"error: cannot create {directory}: {exc.strerror}", err=True)
        sys.exit(1)
    try:
        summary = run_demo(count, directory, say=lambda line: click.echo(f"· {line}", err=True), log=log_to)
    except DemoError as error:
        click.echo(f"error: {error} (the receiver's log: {directory / 'receiver.log'})", err=True)
        sys.exit(1)
    click.echo("")
    echo_table(summary.rows(), ["what", "count"])
    click.echo("")
    click.echo(
        f"store: {directory / 'receiver.db'}   (try: altinn-receiver stats --config {directory / 'receiver.toml'})"
    )
    if not summary.complete:
        click.echo(f"not every event was processed; see {directory / 'receiver.log'}", err=True)
        sys.exit(1)
