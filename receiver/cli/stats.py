"""`altinn-receiver stats`: how the receiver is doing, read from its store."""

from __future__ import annotations

from typing import Any

import click

from receiver.cli.common import config_option, echo_json, echo_table, json_option, load, with_store
from receiver.durations import format_duration
from receiver.store import leases
from receiver.store.backends import open_backend
from receiver.store.inbox import count_by_status
from receiver.store.interface import Database
from receiver.store.operations import WAITING, count_by_type, last_push_at, oldest_event
from receiver.store.schema import INBOX_STATUSES
from receiver.store.state import LAST_CATCHUP_AT, get_fact, list_subscriptions
from receiver.sync.lease import NAME as SYNC_LEASE
from receiver.text import printable
from receiver.timeutil import age_seconds, now, to_iso

SUBSCRIPTION_COLUMNS = ["altinn_id", "resource", "subject", "type", "state", "validated_at"]


def _moment(stamp: str | None) -> dict[str, Any]:
    """A stored timestamp with its age in seconds (both null when it never happened)."""
    if not stamp:
        return {"at": None, "age_seconds": None}
    return {"at": stamp, "age_seconds": round(age_seconds(stamp, now()), 3)}


async def gather(conn: Database) -> dict[str, Any]:
    """Everything `stats` shows, as the JSON document `stats --json` prints."""
    by_status = await count_by_status(conn)
    oldest = await oldest_event(conn, WAITING)
    return {
        "events": {
            "total": sum(by_status.values()),
            "by_status": {status: by_status.get(status, 0) for status in (*INBOX_STATUSES, *by_status)},
            "by_type": await count_by_type(conn),
        },
        "oldest_waiting": None
        if oldest is None
        else {
            "id": oldest.id,
            "type": oldest.type,
            "status": oldest.status,
            "received_at": oldest.received_at,
            "age_seconds": round(age_seconds(oldest.received_at, now()), 3),
        },
        "last_push": _moment(await last_push_at(conn)),
        "last_catchup": _moment(await get_fact(conn, LAST_CATCHUP_AT)),
        "sync_lease": _lease(await leases.current(conn, SYNC_LEASE)),
        "subscriptions": [
            {
                "altinn_id": sub.altinn_id,
                "resource": sub.resource,
                "subject": sub.subject,
                "type": sub.type,
                "state": sub.state,
                "validated": sub.state == "validated",
                "created_at": sub.created_at,
                "validated_at": sub.validated_at,
            }
            for sub in await list_subscriptions(conn)
        ],
    }


def _lease(lease: leases.Lease | None) -> dict[str, Any] | None:
    """Who reconciles subscriptions and catches up (the holder of the sync lease), and whether its lease still
    lasts; None before any process has taken it."""
    if lease is None:
        return None
    return {**lease.to_json(), "expired": lease.expires_at <= to_iso(now())}


def _holder(lease: dict[str, Any] | None) -> str:
    if lease is None:
        return "nobody yet"
    if lease["expired"]:
        return f"nobody: {printable(lease['holder'])}'s lease ran out at {lease['expires_at']}"
    return f"{printable(lease['holder'])} since {lease['since']} (renewed until {lease['expires_at']})"


def _when(moment: dict[str, Any]) -> str:
    if moment["at"] is None:
        return "never"
    return f"{moment['at']} ({format_duration(moment['age_seconds'])} ago)"


def show(stats: dict[str, Any], store: str) -> None:
    events = stats["events"]
    counts = ", ".join(f"{n} {status}" for status, n in events["by_status"].items() if n)
    click.echo(f"store          {store}")
    click.echo(f"events         {events['total']}" + (f" ({counts})" if counts else ""))
    oldest = stats["oldest_waiting"]
    if oldest is None:
        click.echo("oldest waiting none: nothing is pending or retrying")
    else:
        age = format_duration(oldest["age_seconds"])
        what = printable(f"{oldest['type']} {oldest['id']}")
        click.echo(f"oldest waiting {age} ago, {oldest['status']}: {what}")
    click.echo(f"last push      {_when(stats['last_push'])}")
    click.echo(f"last catch-up  {_when(stats['last_catchup'])}")
    click.echo(f"sync lease     {_holder(stats['sync_lease'])}")
    subscriptions = stats["subscriptions"]
    click.echo()
    if subscriptions:
        unvalidated = sum(not sub["validated"] for sub in subscriptions)
        click.echo(f"subscriptions ({len(subscriptions)}, {unvalidated} not validated):")
        echo_table(subscriptions, SUBSCRIPTION_COLUMNS)
    else:
        click.echo("subscriptions: none recorded (the server registers them at startup)")
    if events["by_type"]:
        click.echo()
        click.echo("by type:")
        rows = [{"type": type_, "total": sum(by.values()), **by} for type_, by in events["by_type"].items()]
        statuses = [s for s in events["by_status"] if any(s in by for by in events["by_type"].values())]
        echo_table(rows, ["type", "total", *statuses])


@click.command("stats", short_help="Show how the receiver is doing: counts, the oldest waiting event, subscriptions.")
@json_option
@config_option
def stats_command(as_json: bool, config_path: str | None) -> None:
    """Show counts by status and by event type, the oldest event still waiting to be handled (pending or
    retrying) and its age, the last push from Altinn, the last successful catch-up, and the Altinn subscriptions
    with whether Altinn has validated them.

    Reads the store only, so it works beside a running server. --json prints one JSON document.
    """
    config = load(config_path)
    stats = with_store(config, gather)
    if as_json:
        echo_json(stats)
    else:
        show(stats, open_backend(config.store).location)
