"""The `altinn-receiver` command line: a click group whose subcommands load lazily from their own modules."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from receiver import __version__
from receiver.cli.common import EXIT_INTERRUPTED, Group, config_before_subcommand

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
    "config": "receiver.cli.configuration:config_group",
    "stats": "receiver.cli.stats:stats_command",
    "subscriptions": "receiver.cli.subscriptions:subscriptions_group",
    "catchup": "receiver.cli.catchup:catchup_command",
    "demo": "receiver.cli.demo:demo_command",
    "store": "receiver.cli.store:store_group",
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

    def invoke(self, ctx: click.Context) -> Any:
        """Ctrl-C ends every command with exit status 130, as a shell reports it, without a traceback (click would
        say "Aborted!" and exit 1); so does Ctrl-C at a question (click's Abort)."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.exceptions.Abort):
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_before_subcommand
@click.version_option(__version__, prog_name="altinn-receiver")
def main() -> None:
    """Receive Altinn Correspondence events durably.

    Start with `altinn-receiver demo` to see the whole loop on this machine, then `altinn-receiver init` to set up
    your own. Every command that reads the receiver's config takes --config PATH after its name or before it (or
    $ALTINN_RECEIVER_CONFIG; default ./receiver.toml); `init` writes that file, `demo` makes its own, and
    `simulator` takes its sim.toml. Commands that list things take --json. Ctrl-C exits 130; NO_COLOR turns colour
    off. Shell completion: eval "$(_ALTINN_RECEIVER_COMPLETE=bash_source altinn-receiver)" (zsh_source,
    fish_source). `altinn-receiver COMMAND --help` says more.
    """
