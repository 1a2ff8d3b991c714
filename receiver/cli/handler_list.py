"""`altinn-receiver handlers list`: the handlers this installation can run, where each comes from, and its options."""

from __future__ import annotations

import sys

import click

from receiver.cli.common import Group, config_option, echo_listing, json_option, load
from receiver.config import Config, ConfigError, resolve_config_path
from receiver.worker.catalog import HandlerInfo, catalog

COLUMNS = ["name", "source", "altinn", "options"]


@click.group("handlers", cls=Group)
def handlers_group() -> None:
    """See the handlers pipelines can run: the built-ins and installed plugins.

    docs/handlers.md says how to write, test and ship a plugin.
    """


@handlers_group.command("list")
@config_option
@json_option
def list_command(config_path: str | None, as_json: bool) -> None:
    """List the built-in handlers, the installed plugins and the dotted paths the config names, with their options.

    SOURCE is where each comes from: `builtin`, the distribution (and version) that installs the entry point, or
    the dotted path. Options are shown as `name: type = default`; `(required)` ones have no default. Without a
    config file (no --config, $ALTINN_RECEIVER_CONFIG or ./receiver.toml) the built-ins and plugins are listed.
    With --json, one JSON object per handler per line. Exit status 1 when a handler cannot be loaded (a built-in
    whose optional extra is not installed is listed as such, and is not an error).
    """
    infos = catalog(optional_config(config_path))
    rows = [info.to_json() for info in infos]
    table = [
        {
            "name": info.name,
            "source": info.source,
            "altinn": ("yes" if info.uses_altinn else "no") if info.loaded else "",
            "options": options_text(info),
        }
        for info in infos
    ]
    echo_listing(rows, COLUMNS, as_json=as_json, empty="no handlers", table_rows=table)
    if not all(info.loaded or info.extra for info in infos):
        sys.exit(1)


def options_text(info: HandlerInfo) -> str:
    """The OPTIONS column: the options, or why the handler cannot run here."""
    if info.extra:
        return f"not installed: pip install 'altinn-receiver[{info.extra}]'"
    if info.error:
        return f"error: {info.error}"
    return "; ".join(option.describe() for option in info.options) or "-"


def optional_config(config_path: str | None) -> Config | None:
    """The config when one is given or found, for the dotted paths it names; None when there is none to read."""
    try:
        resolve_config_path(config_path)
    except ConfigError:
        return None
    return load(config_path)
