"""Pieces every subcommand shares: the --config option, config errors as exit status 2, other errors as exit
status 1 with one line, durations as options, JSON lines and tables, reading the store beside a running server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn, TextIO, TypeVar

import click

from receiver.config import CONFIG_ENV, Config, ConfigError, load_config
from receiver.durations import parse_duration
from receiver.observability.logs import add_secrets, redact
from receiver.store.backends import open_backend
from receiver.store.errors import StoreError
from receiver.store.interface import Database
from receiver.store.schema import StoreVersionError
from receiver.text import escape_unstorable, printable
from receiver.timeutil import iso_after
from receiver.validation import secrets_in

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped with Ctrl-C
# A command's summary in its group's --help: its first sentence (or short_help) up to this long, wrapped.
SUMMARY_LIMIT = 140


class Group(click.Group):
    """A command group whose --help lists each subcommand with its whole one-sentence summary, wrapped, where click
    would cut it off at the terminal's width."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(SUMMARY_LIMIT)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# Where `altinn-receiver --config PATH COMMAND` leaves PATH for the command (click shares `meta` down the chain).
_CONFIG_BEFORE = "receiver.config_path"


def config_option(func: F) -> F:
    """`--config PATH` after the command's name, else the one before it, else $ALTINN_RECEIVER_CONFIG (read by
    `resolve_config_path`, so that it never outranks a --config given before the command), else ./receiver.toml."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        callback=lambda ctx, param, value: value if value is not None else ctx.meta.get(_CONFIG_BEFORE),
        help=f"Config file (TOML). Default: --config before the command, ${CONFIG_ENV}, else ./receiver.toml.",
    )(func)


def config_before_subcommand(func: F) -> F:
    """The main group's `--config PATH`, handed to whichever command runs."""

    def remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        ctx.meta[_CONFIG_BEFORE] = value

    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=remember,
        help="The receiver's config file, for the command that follows (as its own --config).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(func)


class Duration(click.ParamType):
    """A command-line duration ("30s", "5m", "48h"; a plain number is seconds) as seconds."""

    name = "duration"

    def __init__(self, *, allow_zero: bool = True) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = value if isinstance(value, float) else parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if not seconds and not self.allow_zero:
            self.fail("must be longer than zero", param, ctx)
        return seconds


def duration_option(
    flag: str, help_text: str, *, default: str | None = None, allow_zero: bool = True
) -> Callable[[F], F]:
    """An option that takes a duration ("30s", "5m", "48h"; a plain number is seconds) and gives seconds."""
    return click.option(
        flag,
        type=Duration(allow_zero=allow_zero),
        default=default,
        show_default=default is not None,
        metavar="DURATION",
        help=help_text,
    )


def since_option(help_text: str) -> Callable[[F], F]:
    """`--since DURATION`: only events received within that long before now (see `received_since`)."""
    return duration_option("--since", help_text)


def received_since(seconds: float | None) -> str | None:
    """The `received_at` bound for `--since DURATION`: that long before now."""
    return None if seconds is None else iso_after(-seconds)


def fail_config(error: ConfigError) -> NoReturn:
    click.echo(f"config error: {error}", err=True)
    sys.exit(EXIT_CONFIG)


def fail(message: object) -> NoReturn:
    """End the command with exit status 1 and one line on stderr (say what to do in `message`)."""
    click.echo(f"error: {printable(redact(str(message)))}", err=True)
    sys.exit(EXIT_FAILED)


def confirm_or_stop(question: str, *, yes: bool, stopped: str) -> None:
    """Go on if --yes was given or the person at the terminal agrees; otherwise exit 1 saying `stopped`.

    Without a terminal to ask on (a script, a pipe) nothing is changed unless --yes says so.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{stopped}: pass --yes to go ahead (there is no terminal to ask on)")
    if not click.confirm(question, err=True):
        click.echo(stopped, err=True)
        sys.exit(EXIT_FAILED)


def load(config_path: str | None) -> Config:
    """Load the config or exit 2 with one line naming the key and the problem. The values of its secret keys are
    then hidden from every log line and message (`redact`)."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        fail_config(error)
    add_secrets(secrets_in(config))
    return config


def fail_store(error: StoreError, config: Config) -> NoReturn:
    """End the command for a store problem; a store at another schema version names the command that fixes it."""
    if isinstance(error, StoreVersionError):
        fail(error.line(config.source))
    fail(error)


def using_store(config: Config, action: Callable[[], T]) -> T:
    """`action()`, a failure of the store ending the command with one line and exit status 1: what the store said
    (at another schema version: the command that fixes it; a damaged file says "damaged" and how to recover; an
    unreachable database why), never a traceback. Each backend turns its driver's errors into `StoreError`."""
    try:
        return action()
    except StoreError as error:
        fail_store(error, config)


def with_store(config: Config, work: Callable[[Database], Awaitable[T]], *, write: bool = False) -> T:
    """`work` on the config's existing store, safe beside a running server: read-only unless `write` (which never
    migrates: a store at another schema version ends the command with the line that says what to run)."""

    async def main() -> T:
        conn = await open_backend(config.store).connect(read_only=not write)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return using_store(config, lambda: asyncio.run(main()))


def use_colour(stream: TextIO) -> bool:
    """Colour only for a person at a terminal who has not asked for none (https://no-color.org: NO_COLOR set to
    anything but the empty string)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def echo_json(value: Any) -> None:
    """`value` as one line of JSON, exact: text is as stored, with a lone surrogate as its JSON escape (`\\ud800`)
    because no output stream can encode it."""
    click.echo(escape_unstorable(json.dumps(value, ensure_ascii=False, default=str)))


def echo_json_lines(values: Iterable[Any]) -> None:
    for value in values:
        echo_json(value)


def echo_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table for people, every cell `printable`; --json is the format for programs."""
    if not rows:
        return

    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        return "" if value is None else printable(str(value))

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(cell(row, c).ljust(widths[c]) for c in columns).rstrip())


def echo_listing(
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    as_json: bool,
    empty: str,
    table_rows: list[dict[str, Any]] | None = None,
) -> None:
    """A listing: JSON lines with --json; for people a table (of `table_rows` when they are shown differently), or
    `empty` when there is nothing to list."""
    if as_json:
        echo_json_lines(rows)
    elif not rows:
        click.echo(empty)
    else:
        echo_table(rows if table_rows is None else table_rows, columns)
