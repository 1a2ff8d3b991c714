"""`events replay` and `events dead`: putting events back in the queue, and the list of those that gave up."""

from __future__ import annotations

import sys

import click

from receiver.cli.common import (
    config_option,
    confirm_or_stop,
    echo_json,
    echo_listing,
    echo_table,
    fail,
    json_option,
    load,
    received_since,
    since_option,
    with_store,
)
from receiver.observability.logs import redact
from receiver.store.inbox import EventFilter, count_by_status, list_events
from receiver.store.interface import Database
from receiver.store.operations import REPLAY_BATCH, REPLAYABLE
from receiver.store.records import InboxRecord
from receiver.worker.replay import ReplayPlan, plan_replay, replay_in_batches

# From this many events on, replay shows a progress bar on stderr.
PROGRESS_FROM = 2 * REPLAY_BATCH
DEAD_COLUMNS = ["received_at", "type", "resourceinstance", "id", "attempts", "last_error"]


def listed(ids: list[str]) -> str:
    """At most ten ids, then how many more."""
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


async def run_replay(conn: Database, ids: list[str], progress: bool) -> int:
    """Replay in batches, a progress bar on stderr when `progress`; returns how many changed."""
    with click.progressbar(length=len(ids), label="replaying", file=sys.stderr, hidden=not progress) as bar:
        return await replay_in_batches(conn, ids, bar.update)


def check_selection(ids: tuple[str, ...], status: str | None, type_glob: str | None, since: float | None) -> None:
    if ids and (status or type_glob or since is not None):
        raise click.UsageError("give event ids or --status (with --type/--since), not both")
    if not ids and not status:
        raise click.UsageError("say what to replay: event ids, or --status dead (optionally with --type and --since)")


@click.command("replay")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--status", type=click.Choice(REPLAYABLE), help="Replay every event with this status (usually dead).")
@click.option("--type", "type_glob", metavar="GLOB", help="With --status: only event types matching GLOB.")
@since_option("With --status: only events received within DURATION before now, e.g. 24h.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed and change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed when there is no terminal).")
@json_option
@config_option
def replay_command(
    ids: tuple[str, ...],
    status: str | None,
    type_glob: str | None,
    since: float | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Put events back in the queue so the handlers run them again: by event id, or every event with a status.

    A replayed event becomes pending with its attempts reset and runs as soon as a worker is free; its last error is
    kept until it runs again. Events being processed right now are left alone, and so are those whose payload
    retention has pruned and those the webhook would refuse (by id, these stop the replay). Shows how many it will
    replay and asks first (--yes to skip,
    --dry-run to only look). Safe while the server runs.

    \b
    Examples:
      altinn-receiver events replay 0f8f1b7e-0d6c-4c48-9a7f-6f2a9d1c2b11
      altinn-receiver events replay --status dead --type '*.correspondencepublished' --since 24h --dry-run
    """
    check_selection(ids, status, type_glob, since)
    config = load(config_path)
    selection = EventFilter(status=status, type_glob=type_glob, since=received_since(since))
    plan = with_store(config, lambda conn: plan_replay(conn, ids, selection))
    if plan.unknown:
        unknown = listed(plan.unknown)
        fail(f"not in the store: {unknown}; nothing replayed (check the ids with `altinn-receiver events list`)")
    if ids and plan.pruned:
        fail(
            f"pruned by retention, so they cannot run again: {listed([r.id for r in plan.pruned])}; nothing replayed"
            " (their payload was dropped [retention] done after they finished; `events show` shows what is kept)"
        )
    if ids and plan.refused:
        fail(
            f"refused at the door, so they can never run: {listed([r.id for r in plan.refused])}; nothing replayed"
            " (they are not valid CloudEvents or hold text no store can keep; `events show` shows why)"
        )
    targets = [record.id for record in plan.events]
    replayed = 0
    if not as_json:
        describe_plan(plan, dry_run)
    if targets and not dry_run:
        confirm_or_stop(f"Replay {len(targets)} event(s)?", yes=yes, stopped=f"not replaying {len(targets)} event(s)")
        progress = len(targets) >= PROGRESS_FROM
        replayed = with_store(config, lambda conn: run_replay(conn, targets, progress), write=True)
    if as_json:
        echo_json(
            {
                "dry_run": dry_run,
                "selected": targets,
                "replayed": replayed,
                "left_alone": [record.id for record in plan.busy],
                "pruned": [record.id for record in plan.pruned],
                "refused": [record.id for record in plan.refused],
            }
        )
    elif not dry_run and targets:
        skipped = len(targets) - replayed
        click.echo(f"replayed {replayed} event(s); they run again as soon as a worker is free")
        if skipped:
            click.echo(f"{skipped} started processing meanwhile and were left alone")


def describe_plan(plan: ReplayPlan, dry_run: bool) -> None:
    if plan.busy:
        click.echo(f"{len(plan.busy)} event(s) are being processed right now and are left alone")
    if plan.pruned:
        click.echo(f"{len(plan.pruned)} event(s) were pruned by retention (payload dropped) and cannot run again")
    if plan.refused:
        click.echo(f"{len(plan.refused)} event(s) were refused at the door (`events show` says why): they never run")
    if not plan.events:
        click.echo("nothing to replay")
        return
    click.echo(f"{len(plan.events)} event(s) to replay")
    if dry_run:
        rows = [{**record.to_json(), "last_error": redact(record.last_error)} for record in plan.events]
        echo_table(rows, ["id", "status", "type", "attempts", "last_error"])
        click.echo("dry run: nothing changed")


async def read_dead(conn: Database, limit: int) -> tuple[list[InboxRecord], int]:
    dead = await list_events(conn, EventFilter(status="dead"), limit=limit)
    return dead, (await count_by_status(conn)).get("dead", 0)


@click.command("dead")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Show at most N, newest first."
)
@json_option
@config_option
def dead_command(limit: int, as_json: bool, config_path: str | None) -> None:
    """List the dead events (handlers gave up on them) with their last error, newest first.

    With --json, one JSON object per event per line (JSON lines), like `events list --json`.

    Fix the cause, then `altinn-receiver events replay --status dead` puts them back in the queue.
    """
    config = load(config_path)
    records, total = with_store(config, lambda conn: read_dead(conn, limit))
    rows = [record.to_json() for record in records]
    shown = [{**row, "last_error": redact(row["last_error"])} for row in rows]
    echo_listing(rows, DEAD_COLUMNS, as_json=as_json, empty="no dead events", table_rows=shown)
    if not as_json and total > len(records):
        click.echo(f"(showing {len(records)} of {total} dead events; --limit to see more)")
