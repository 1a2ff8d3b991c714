"""The `altinn-receiver` command line: a click group whose subcommands load lazily from their own modules."""

from __future__ import annotations

import importlib

import click

from receiver import __version__
from receiver.cli.common import Group

# Subcommand name -> "module:attribute". Loaded only when used, so `--help` and small commands start fast.
COMMANDS: dict[str, str] = {
    "simulator": "receiver.cli.simulator:simulator_command",
    "init": "receiver.cli.init:init_command",
    "send": "receiver.cli.send:send_command",
    "serve": "receiver.cli.serve:serve_command",
    "events": "receiver.cli.events:events_group",
    "tail": "receiver.cli.tail:tail_command",
    "token": "receiver.cli.token:token_command",
    "check": "receiver.cli.check:check_command",
    "stats": "receiver.cli.stats:stats_command",
    "subscriptions": "receiver.cli.subscriptions:subscriptions_group",
    "catchup": "receiver.cli.catchup:catchup_command",
    "demo": "receiver.cli.demo:demo_command",
    "handlers": "receiver.cli.handler_list:handlers_group",
}


class LazyGroup(Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="altinn-receiver")
def main() -> None:
    """Receive Altinn Correspondence events durably.

    Start with `altinn-receiver demo` to see the whole loop on this machine, then `altinn-receiver init` to set up
    your own. Every command that reads the receiver's config takes --config PATH after its name (or
    $ALTINN_RECEIVER_CONFIG; default ./receiver.toml); `init` writes that file, `demo` makes its own, and
    `simulator` takes its sim.toml. Commands that list things take --json. `altinn-receiver COMMAND --help` says
    more.
    """
