"""`altinn-receiver token`: get the receiver's Altinn (or Maskinporten) tokens and show their claims — for checking
access. One token per scope set, as the receiver asks for them (`receiver.scopes`), each with its purpose."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import click

from receiver.altinn import AltinnClients, AltinnError, Token
from receiver.altinn.clients import require_altinn
from receiver.cli.common import config_option, echo_json, fail, fail_config, json_option, load
from receiver.config import ConfigError, token_scope_sets
from receiver.durations import format_duration
from receiver.scopes import PURPOSES
from receiver.timeutil import to_iso


@dataclass(frozen=True)
class Shown:
    """A token and what it is for: a purpose of `receiver.scopes`, or None for scopes asked with --scope."""

    purpose: str | None
    token: Token


@click.command("token")
@config_option
@click.option(
    "--purpose",
    type=click.Choice(sorted(PURPOSES)),
    help="Only the token for this family of calls. Default: every scope set the config's role uses.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="Ask for exactly this scope instead (repeat for more), whatever the receiver uses.",
)
@click.option("--maskinporten", "maskinporten", is_flag=True, help="The Maskinporten token, not the exchanged one.")
@click.option(
    "--raw",
    is_flag=True,
    help="Print the token itself (it is a secret: handle it like a password). Without --json, choose one token "
    "with --purpose or --scope.",
)
@json_option
def token_command(
    config_path: str | None, purpose: str | None, scopes: tuple[str, ...], maskinporten: bool, raw: bool, as_json: bool
) -> None:
    """Get tokens the way the receiver does and print their claims (decoded, not verified).

    The receiver asks for one token per family of calls, each with only the scopes that family needs (see
    docs/authentication.md): `recipient`, `sender`, `events`. This prints each with its purpose; --json prints one
    JSON object per line. The token itself is printed only with --raw. Exit 1 if Maskinporten or Altinn refuses,
    2 on a config problem.
    """
    if purpose and scopes:
        raise click.UsageError("--purpose and --scope exclude each other: --scope asks for exactly the scopes given")
    config = load(config_path)
    try:
        require_altinn(config)
        sets = token_scope_sets(config)
        wanted: list[tuple[str | None, Sequence[str]]] = (
            [(None, scopes)] if scopes else [(p, s) for p, s in sets.items() if purpose in (None, p)]
        )
        if not wanted:
            raise click.BadParameter(
                f"[altinn] role = {config.altinn.role!r} with these scopes uses no {purpose} token "
                f"(only {', '.join(sets)})",
                param_hint="--purpose",
            )
        if raw and not as_json and len(wanted) != 1:
            raise click.UsageError(f"--raw prints one token: choose it with --purpose ({', '.join(sets)}) or --scope")
        shown = asyncio.run(_fetch(AltinnClients.from_config(config), wanted, maskinporten))
    except ConfigError as error:
        fail_config(error)
    except AltinnError as error:
        fail(error)
    kind = "maskinporten" if maskinporten else "altinn"
    if as_json:
        for item in shown:
            secret = {"token": item.token.value} if raw else {}
            echo_json({"purpose": item.purpose, "kind": kind, **describe(item.token), **secret})
    elif raw:
        click.echo(shown[0].token.value)
    else:
        for i, item in enumerate(shown):
            if i:
                click.echo()
            _print_human(kind, item)


async def _fetch(
    clients: AltinnClients, wanted: Sequence[tuple[str | None, Sequence[str]]], maskinporten: bool
) -> list[Shown]:
    """A token for each (purpose, scopes) wanted, in order; nothing if any is refused."""
    async with clients:
        obtain = clients.tokens.maskinporten if maskinporten else clients.tokens.altinn
        return [Shown(purpose, await obtain(scopes)) for purpose, scopes in wanted]


def _print_human(kind: str, item: Shown) -> None:
    token = item.token
    scopes = " ".join(token.scopes) or "(no scope claim)"
    click.echo(f"{kind} token for {item.purpose}: {scopes}" if item.purpose else f"{kind} token for {scopes}")
    if item.purpose:
        click.echo(f"used for {PURPOSES[item.purpose]}")
    expires = to_iso(datetime.fromtimestamp(token.expires_at, UTC))
    click.echo(f"expires {expires} (in {format_duration(token.expires_at - token.obtained_at)})")
    click.echo(json.dumps(token.claims, indent=2, ensure_ascii=False, sort_keys=True))


def describe(token: Token) -> dict[str, object]:
    """What the command shows about a token: never the token itself."""
    return {
        "scopes": list(token.scopes),
        "expires_at": to_iso(datetime.fromtimestamp(token.expires_at, UTC)),
        "expires_in": max(0, round(token.expires_at - token.obtained_at)),
        "claims": token.claims,
    }
