"""Pieces every subcommand shares: the --config option, config errors as exit status 2, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import click

from receiver.config import CONFIG_ENV, Config, ConfigError, load_config

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CONFIG = 2


def config_option(func: F) -> F:
    """`--config PATH`, falling back to $ALTINN_RECEIVER_CONFIG and then ./receiver.toml."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar=CONFIG_ENV,
        default=None,
        help=f"Config file (TOML). Default: ${CONFIG_ENV}, else ./receiver.toml.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(func)


def fail_config(error: ConfigError) -> NoReturn:
    click.echo(f"config error: {error}", err=True)
    sys.exit(EXIT_CONFIG)


def load(config_path: str | None) -> Config:
    """Load the config or exit 2 with one line naming the key and the problem."""
    try:
        return load_config(config_path)
    except ConfigError as error:
        fail_config(error)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


def echo_json_lines(values: Iterable[Any]) -> None:
    for value in values:
        echo_json(value)


def echo_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table for people; --json is the format for programs."""
    if not rows:
        return

    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        return "" if value is None else str(value)

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(cell(row, c).ljust(widths[c]) for c in columns).rstrip())
