"""`altinn-receiver token`: get an Altinn (or Maskinporten) token and show its claims — for checking access."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import click

from receiver.altinn import AltinnClients, AltinnError, Token
from receiver.cli.common import config_option, echo_json, fail, fail_config, json_option, load
from receiver.config import ConfigError
from receiver.durations import format_duration
from receiver.timeutil import to_iso


@click.command("token")
@config_option
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="Ask for this scope (repeat for more). Default: [maskinporten] scopes.",
)
@click.option("--maskinporten", "maskinporten", is_flag=True, help="The Maskinporten token, not the exchanged one.")
@click.option("--raw", is_flag=True, help="Print the token itself (it is a secret: handle it like a password).")
@json_option
def token_command(
    config_path: str | None, scopes: tuple[str, ...], maskinporten: bool, raw: bool, as_json: bool
) -> None:
    """Get a token the way the receiver does and print its claims (decoded, not verified).

    The token itself is printed only with --raw. Exit 1 if Maskinporten or Altinn refuses, 2 on a config problem.
    """
    config = load(config_path)
    try:
        token = asyncio.run(_fetch(AltinnClients.from_config(config), scopes or None, maskinporten))
    except ConfigError as error:
        fail_config(error)
    except AltinnError as error:
        fail(error)
    kind = "maskinporten" if maskinporten else "altinn"
    if as_json:
        echo_json({"kind": kind, **describe(token), **({"token": token.value} if raw else {})})
    elif raw:
        click.echo(token.value)
    else:
        expires = to_iso(datetime.fromtimestamp(token.expires_at, UTC))
        click.echo(f"{kind} token for {' '.join(token.scopes) or '(no scope claim)'}")
        click.echo(f"expires {expires} (in {format_duration(token.expires_at - token.obtained_at)})")
        click.echo(json.dumps(token.claims, indent=2, ensure_ascii=False, sort_keys=True))


async def _fetch(clients: AltinnClients, scopes: Sequence[str] | None, maskinporten: bool) -> Token:
    async with clients:
        if maskinporten:
            return await clients.tokens.maskinporten(scopes)
        return await clients.tokens.altinn(scopes)


def describe(token: Token) -> dict[str, object]:
    """What the command shows about a token: never the token itself."""
    return {
        "scopes": list(token.scopes),
        "expires_at": to_iso(datetime.fromtimestamp(token.expires_at, UTC)),
        "expires_in": max(0, round(token.expires_at - token.obtained_at)),
        "claims": token.claims,
    }
