"""`altinn-receiver config show` and `config validate`: the effective config, and the checks `serve` makes at start."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import click

from receiver.app import prepare
from receiver.cli.common import Group, config_option, echo_json, fail_config, json_option, load
from receiver.config import Config, ConfigError
from receiver.durations import exact_duration
from receiver.validation import dump
from receiver.worker.pipelines import Pipelines, load_pipelines

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def effective(config: Config, pipelines: Pipelines) -> dict[str, Any]:
    """The config as the receiver runs it: every key with its value or default, the pipelines that run (the
    role's defaults when none are configured), each handler with its own `step_timeout` and its checked options;
    secrets as ***."""
    shown = dump(config)
    shown["pipelines"] = [
        {"types": list(pipeline.types), "handlers": [step.name for step in pipeline.steps]}
        for pipeline in pipelines.pipelines
    ]
    shown["handlers"] = {name: _handler_shown(config, name, step.options) for name, step in pipelines.steps.items()}
    return shown


def _handler_shown(config: Config, name: str, options: Any) -> dict[str, Any]:
    """`[handlers.NAME]` as it runs: `use`, the `step_timeout` the section sets (else `[dispatch]`'s applies), and
    the handler's checked options."""
    section = config.handlers.get(name)
    shown: dict[str, Any] = {"use": section.use if section is not None else name}
    if section is not None and section.step_timeout is not None:
        shown["step_timeout"] = exact_duration(section.step_timeout)
    return {**shown, **(dump(options) if options is not None else {})}


def toml_text(shown: Mapping[str, Any]) -> str:
    """`effective`'s result as a TOML file: sections as tables, handlers as [handlers.NAME], pipelines and
    subscriptions as arrays of tables (an empty one as `name = []`, before every table, where TOML wants it); a key
    or section that is not set is a comment (TOML has no null)."""
    lines = [f"{_key(name)} = []" for name, value in shown.items() if value == []]

    def table(header: str, values: Mapping[str, Any]) -> None:
        lines.extend(["", header])
        for name, value in values.items():
            lines.append(f"# {_key(name)} is not set" if value is None else f"{_key(name)} = {toml_value(value)}")

    for name, value in shown.items():
        if name == "handlers":
            for handler, options in value.items():
                table(f"[handlers.{_key(handler)}]", options)
        elif isinstance(value, list):
            for entry in value:
                table(f"[[{_key(name)}]]", entry)
        elif value is None:  # a section that is off unless it is there ([console])
            lines.extend(["", f"# [{_key(name)}] is not set"])
        else:
            table(f"[{_key(name)}]", value)
    return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name)


def _string(text: str) -> str:
    # JSON's string escapes are TOML's, but for DEL, which TOML wants escaped too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """A value as TOML writes it (a table inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


@click.group("config", cls=Group)
def config_group() -> None:
    """See the effective config, and check it as `serve` does at start without starting anything."""


@config_group.command("show")
@config_option
@json_option
def show_command(config_path: str | None, as_json: bool) -> None:
    """Print the effective config, every secret as ***.

    Every key with its value or its default, the pipelines that will run (the role's defaults when the file has
    none) and each handler's options. As TOML, or one JSON object with --json. A config error exits 2."""
    config = load(config_path)
    try:
        shown = effective(config, load_pipelines(config))
    except ConfigError as error:
        fail_config(error)
    if as_json:
        echo_json(shown)
    else:
        click.echo(f"# The effective config of {config.source}: defaults filled in, secrets as ***.")
        click.echo(toml_text(shown), nl=False)


@config_group.command("validate")
@config_option
def validate_command(config_path: str | None) -> None:
    """Check the config offline, as `serve` does before it listens.

    Every key, every pipeline's handlers and their options (plugins included) and the Maskinporten key. Exit 0
    with one line when all is well; exit 2 with one line naming the key and the fix on the first problem. Whether
    Altinn accepts it all is `check`'s job."""
    config = load(config_path)
    try:
        prepared = prepare(config)
    except ConfigError as error:
        fail_config(error)
    handlers = len(prepared.pipelines.steps)
    key = f", Maskinporten key signs with {prepared.key.description}" if prepared.key is not None else ""
    click.echo(f"{config.source}: valid ({len(prepared.pipelines.pipelines)} pipeline(s), {handlers} handler(s){key})")
    if prepared.pipelines.warning:  # valid, but not what a receiver is usually for: serve logs the same warning
        click.echo(f"warning: {prepared.pipelines.warning}", err=True)
