"""The command line's conventions, checked on every registered command: summaries in `--help`, `--config` after
the subcommand, `--json` on listings, durations as "30s"/"5m"/"48h" (a plain number is seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from receiver.cli.main import COMMANDS, main

# Commands without the receiver's --config, as the issues say: `init` writes the config, `demo` makes its own.
WITHOUT_CONFIG = {"init", "demo"}
LISTINGS = ["events list", "events dead", "tail", "stats", "subscriptions list", "subscriptions sync", "catchup"]
LISTINGS += ["handlers list"]


def commands() -> Iterator[tuple[str, click.Command]]:
    """Every command a user can run, by its full name ("events list"); groups are walked, not listed."""
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                yield f"{name} {sub_name}", sub
        else:
            yield name, command


def options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize("group", [[], ["events"], ["subscriptions"], ["handlers"]])
def test_help_lists_every_command_with_its_whole_summary(group: list[str]) -> None:
    code, text = invoke(*group, "--help")
    assert code == 0
    listing = text.split("Commands:", 1)[1]
    names = list(COMMANDS) if not group else [name.split()[1] for name, _ in commands() if name.split()[0] == group[0]]
    for name in names:
        assert f"\n  {name} " in listing, name
    assert "..." not in listing, "a summary was cut off"


def test_every_command_takes_config_after_its_name_except_init_and_demo() -> None:
    missing = [name for name, command in commands() if "--config" not in options(command)]
    assert sorted(missing) == sorted(WITHOUT_CONFIG)


@pytest.mark.parametrize("name", LISTINGS)
def test_listing_commands_take_json(name: str) -> None:
    assert "--json" in options(dict(commands())[name])


@pytest.mark.parametrize(
    "args",
    [
        ["tail", "--since"],
        ["events", "replay", "--status", "dead", "--since"],
        ["subscriptions", "sync", "--wait"],
        ["send", "--resource", "r", "--recipient", "310000000", "--title", "t", "--follow", "--timeout"],
        ["send", "--resource", "r", "--recipient", "310000000", "--title", "t", "--due"],
    ],
)
def test_duration_flags_take_duration_strings_and_say_what_one_looks_like(args: list[str], tmp_path: Path) -> None:
    flag = args[-1]
    code, text = invoke(*args, "soon")
    assert code == 2
    assert flag in text and '"30s"' in text
    # A good duration gets past the flags: what stops the command then is the missing config file.
    for good in ("90", "1h30m"):
        code, text = invoke(*args, good, "--config", str(tmp_path / "missing.toml"))
        assert (code, flag in text) == (2, False), text
        assert "config error" in text


@pytest.mark.parametrize("flag", ["--timeout", "--due"])
def test_send_refuses_a_zero_duration(flag: str) -> None:
    code, text = invoke("send", "--resource", "r", "--recipient", "310000000", "--title", "t", flag, "0")
    assert code == 2
    assert flag in text and "longer than zero" in text
