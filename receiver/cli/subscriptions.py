"""`altinn-receiver subscriptions list|sync|delete|prune`: this receiver's subscriptions at Altinn Events."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from receiver.altinn import AltinnClients, AltinnError
from receiver.cli.common import (
    Group,
    config_option,
    confirm_or_stop,
    duration_option,
    echo_listing,
    fail,
    fail_config,
    json_option,
    load,
    using_store,
)
from receiver.config import Config, ConfigError
from receiver.store.backends import open_backend
from receiver.sync.subscriptions import SubscriptionManager, SubscriptionView

T = TypeVar("T")

COLUMNS = ["id", "resource", "subject", "type", "role", "validated", "endpoint", "note"]


def run(config: Config, job: Callable[[SubscriptionManager], Awaitable[T]]) -> T:
    """Run `job` with a manager on the configured store and Altinn; errors end the command with one line."""

    async def main() -> T:
        async with AltinnClients.from_config(config) as clients:
            backend = open_backend(config.store)
            await asyncio.to_thread(backend.create_if_missing)
            conn = await backend.connect()
            try:
                return await job(SubscriptionManager(config, conn, clients))
            finally:
                await conn.close()

    try:
        return using_store(config, lambda: asyncio.run(main()))
    except ConfigError as error:
        fail_config(error)
    except AltinnError as error:
        fail(error)


def note(view: SubscriptionView) -> str:
    if view.role == "superseded":
        return f"deleted at {view.delete_after}" if view.delete_after else "deleted 1h after its successor validates"
    if view.role == "unwanted":
        return "not in the config: `subscriptions prune` deletes it"
    if view.role == "missing":
        return "not at Altinn: `serve` or `subscriptions sync` creates it"
    return ""


def show(views: list[SubscriptionView], as_json: bool) -> None:
    shown = [
        {**v.to_json(), "id": v.id or "-", "validated": {True: "yes", False: "no", None: "-"}[v.validated],
         "note": note(v)}
        for v in views
    ]  # fmt: skip
    rows = [v.to_json() for v in views]
    echo_listing(
        rows, COLUMNS, as_json=as_json, empty="no subscriptions configured and none at Altinn", table_rows=shown
    )


@click.group("subscriptions", cls=Group)
def subscriptions_group() -> None:
    """List, register, delete and prune this receiver's subscriptions at Altinn Events.

    The wanted ones are the config's [[subscriptions]], pushed to [receiver] public_url?code=<secret>. `serve`
    registers them at startup; these commands show and tidy them by hand. Codes are always shown as ?code=***.
    """


@subscriptions_group.command("list")
@config_option
@json_option
def list_command(config_path: str | None, as_json: bool) -> None:
    """Wanted subscriptions next to those that exist at Altinn, validated or not.

    ROLE is `current` (wanted, current code), `superseded` (an old code after rotation: deleted once its successor
    has been validated for an hour, as Altinn caches subscriptions that long), `unwanted` (this endpoint, but no
    longer in the config: `prune` deletes it), `missing` (wanted, not at Altinn yet) or `other-endpoint`
    (another endpoint under the same Altinn consumer: never touched).
    """
    config = load(config_path)
    show(run(config, lambda manager: manager.survey()), as_json)


@subscriptions_group.command(
    "sync", short_help="Register every wanted subscription now and wait for Altinn to validate them."
)
@config_option
@json_option
@duration_option(
    "--wait", 'How long to wait for Altinn to validate new subscriptions ("30s", "2m"; 0 to not wait).', default="30s"
)
def sync_command(config_path: str | None, as_json: bool, wait: float) -> None:
    """Register every wanted subscription now (the same POST `serve` makes at startup), wait for Altinn to
    validate them, and delete superseded ones whose hour has passed. Exits 1 if one is still unvalidated."""
    config = load(config_path)

    async def job(manager: SubscriptionManager) -> list[SubscriptionView]:
        records = [await manager.register(key) for key in manager.wanted()]
        deadline = asyncio.get_running_loop().time() + wait
        while any(r.state != "validated" for r in records) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1.0)
            records = [refreshed for r in records if (refreshed := await manager.refresh(r)) is not None]
        views = await manager.survey()
        if await manager.retire_due(views):
            views = await manager.survey()
        return views

    views = run(config, job)
    show(views, as_json)
    unvalidated = [v for v in views if v.role == "current" and not v.validated]
    if unvalidated:
        click.echo(
            f"{len(unvalidated)} subscription(s) not validated yet: Altinn could not reach [receiver] public_url."
            " Check that the URL reaches a running receiver over https with a publicly trusted certificate.",
            err=True,
        )
        sys.exit(1)


@subscriptions_group.command("delete")
@config_option
@click.argument("subscription_id", metavar="ID", type=int)
def delete_command(config_path: str | None, subscription_id: int) -> None:
    """Delete subscription ID at Altinn (Altinn lets you delete only those you created).

    A subscription the config still wants is created again at the next `serve` start or `subscriptions sync`.
    Altinn may keep pushing to a deleted subscription for up to an hour (its cache).
    """
    config = load(config_path)

    async def job(manager: SubscriptionManager) -> SubscriptionView | None:
        views = await manager.survey()
        await manager.delete(subscription_id)
        return next((v for v in views if v.id == subscription_id), None)

    deleted = run(config, job)
    click.echo(f"deleted subscription {subscription_id}")
    if deleted is not None and deleted.role == "current":
        click.echo("the config still wants it: `serve` or `subscriptions sync` will create it again", err=True)


@subscriptions_group.command("prune")
@config_option
@click.option("--yes", "-y", is_flag=True, help="Delete without asking (needed when there is no terminal).")
def prune_command(config_path: str | None, yes: bool) -> None:
    """Delete the subscriptions at Altinn for this receiver's endpoint (compared without the query string) that
    the config no longer wants. Lists them and asks first unless --yes. Other endpoints are never touched."""
    config = load(config_path)
    views = run(config, lambda manager: manager.survey())
    unwanted = [v for v in views if v.role == "unwanted"]
    if not unwanted:
        click.echo("nothing to prune: every subscription for this endpoint is wanted")
        return
    show(unwanted, as_json=False)
    confirm_or_stop(f"Delete these {len(unwanted)} subscription(s) at Altinn?", yes=yes, stopped="nothing deleted")

    async def job(manager: SubscriptionManager) -> None:
        for view in unwanted:
            assert view.id is not None
            await manager.delete(view.id)

    run(config, job)
    click.echo(f"deleted {len(unwanted)} subscription(s): {', '.join(str(v.id) for v in unwanted)}")
