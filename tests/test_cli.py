"""The command line's conventions, checked on every registered command: summaries in `--help`, `--config` after
the subcommand, `--json` on listings, durations as "30s"/"5m"/"48h" (a plain number is seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from receiver.cli.main import COMMANDS, main
from receiver.config import CONFIG_ENV
from receiver.server_thread import free_port
from tests.support import wait_until

# Commands without the receiver's --config, as the issues say: `init` writes the config, `demo` makes its own.
WITHOUT_CONFIG = {"init", "demo"}
LISTINGS = [
    "events list", "events dead", "tail", "stats", "subscriptions list", "subscriptions sync", "catchup", "config show"
]  # fmt: skip
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


@pytest.mark.parametrize("group", [[], ["events"], ["subscriptions"], ["config"], ["store"], ["handlers"]])
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


def test_config_is_also_accepted_before_the_subcommand(tmp_path: Path) -> None:
    good = tmp_path / "receiver.toml"
    good.write_text('[receiver]\nsecret = "a-webhook-code-of-16+"\n')
    missing = str(tmp_path / "missing.toml")
    assert invoke("--config", str(good), "config", "validate")[0] == 0
    assert invoke("--config", str(good), "events", "list")[1].startswith("error: store ")  # read the config, then
    assert invoke("--config", missing, "config", "validate", "--config", str(good))[0] == 0, "after wins"
    result = CliRunner().invoke(main, ["--config", str(good), "config", "validate"], env={CONFIG_ENV: missing})
    assert result.exit_code == 0, "before wins over the environment"
    code, text = invoke("--config", missing, "config", "validate")
    assert code == 2 and "does not exist" in text


def test_shell_completion_completes_command_names() -> None:
    env = {
        **os.environ,
        "_ALTINN_RECEIVER_COMPLETE": "bash_complete",
        "COMP_WORDS": "altinn-receiver con",
        "COMP_CWORD": "1",
    }
    result = subprocess.run([sys.executable, "-m", "receiver"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "plain,config" in result.stdout.splitlines()


def test_ctrl_c_exits_130_without_a_traceback_from_a_command_that_runs_a_server() -> None:
    """`serve`, `tail -f` and `send --follow` have tests of their own; here the simulator, which uvicorn runs."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver", "simulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: listening(port), timeout=20, message="the simulator to listen")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None and "Traceback" not in process.stderr.read()


def listening(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_sim/state", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
