"""`altinn-receiver store migrate|backup`: the store file's schema and its backups."""

from __future__ import annotations

from pathlib import Path

import click

from receiver.cli.common import Group, config_option, echo_json, fail, fail_store, json_option, load
from receiver.config import Config
from receiver.store.backends import open_backend
from receiver.store.errors import StoreError
from receiver.store.interface import Backend
from receiver.store.migrations import LATEST, Migration


@click.group("store", cls=Group)
def store_group() -> None:
    """Look after the store file: bring its schema up to this release, back it up.

    Restoring a backup is a file copy while `serve` is stopped: see docs/operations.md.
    """


def existing_store(config: Config) -> Backend:
    backend = open_backend(config.store)
    if not backend.exists():
        fail(backend.missing())
    return backend


@store_group.command("migrate")
@click.option("--dry-run", is_flag=True, help="Show the migrations the store lacks and change nothing.")
@json_option
@config_option
def migrate_command(dry_run: bool, as_json: bool, config_path: str | None) -> None:
    """Bring the store's schema up to this release: apply the migrations it lacks, in order.

    `serve` does the same when it starts; other commands refuse a store that is not at this release's schema and
    say to run this. Safe while `serve` runs: one process migrates at a time (the others wait, then find nothing to
    do), and migrations only add tables and indexes, so a running older release keeps working. Take a backup first
    (`altinn-receiver store backup`). A store migrated by a newer release is refused.
    """
    config = load(config_path)
    backend = existing_store(config)
    path = backend.location
    try:
        if dry_run:
            state, todo = backend.pending()
            before = state.version
        else:
            result = backend.migrate()
            before, todo = result.before.version, result.applied
    except StoreError as error:
        fail_store(error, config)
    if as_json:
        listed = [{"version": m.version, "name": m.name} for m in todo]
        echo_json({"store": path, "dry_run": dry_run, "from_version": before, "to_version": LATEST,
                   "pending" if dry_run else "applied": listed})  # fmt: skip
        return
    if not todo:
        click.echo(f"store {path} is at schema version {before}, this release's: nothing to migrate")
        return
    click.echo(f"store {path} is at schema version {before}; {'would apply' if dry_run else 'applied'}:")
    for migration in todo:
        click.echo(f"  {describe(migration)}")
    click.echo("dry run: nothing changed" if dry_run else f"now at schema version {LATEST}")


def describe(migration: Migration) -> str:
    return f"{migration.version:>4}  {migration.name}"


@store_group.command("backup")
@click.argument("target", metavar="PATH", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@config_option
def backup_command(target: Path, as_json: bool, config_path: str | None) -> None:
    """Copy the store to PATH, consistent while `serve` runs (SQLite's online backup), with the store's file mode.

    The copy holds every event acknowledged before it started. PATH must not exist: the copy is written beside it,
    checked, and renamed when complete, so PATH is a whole backup or nothing. Works on a store of any schema version
    (take one before `store migrate`). Restore: docs/operations.md.
    """
    config = load(config_path)
    backend = existing_store(config)
    path = backend.location
    try:
        made = backend.backup(target)
    except StoreError as error:
        fail(error)
    if as_json:
        echo_json({"store": path, "backup": str(made.path), "bytes": made.bytes,
                   "schema_version": made.schema_version, "events": made.events})  # fmt: skip
        return
    click.echo(
        f"backed up {path} to {made.path}: {made.bytes} bytes, {made.events} events, schema version"
        f" {made.schema_version}"
    )
