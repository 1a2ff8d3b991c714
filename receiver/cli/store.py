"""`altinn-receiver store migrate|backup|copy`: the store's schema, its backups, and moving it to PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from receiver.cli.common import (
    Group,
    config_option,
    echo_json,
    fail,
    fail_config,
    json_option,
    load,
    using_store,
)
from receiver.config import Config, ConfigError, StoreConfig, check_store_url
from receiver.store.backends import open_backend
from receiver.store.copy import Copied, copy_store, count_rows
from receiver.store.errors import StoreError
from receiver.store.interface import Backend
from receiver.store.migrations import LATEST, Migration


@click.group("store", cls=Group)
def store_group() -> None:
    """Look after the store: bring its schema up to this release, back it up, copy it to PostgreSQL.

    Restoring a backup is a file copy while `serve` is stopped: see docs/operations.md.
    """


def existing_store(config: Config) -> Backend:
    return present(open_backend(config.store))


def present(backend: Backend) -> Backend:
    """The backend, if its store is there to open; otherwise exit 1 saying why."""
    try:
        there = backend.exists()
    except StoreError as error:
        fail(error)
    if not there:
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
    if config.store.check_on_start:
        using_store(config, backend.check_integrity)
    if dry_run:
        state, todo = using_store(config, backend.pending)
        before = state.version
    else:
        result = using_store(config, backend.migrate)
        before, todo = result.before.version, result.applied
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
    made = using_store(config, lambda: backend.backup(target))
    if as_json:
        echo_json({"store": path, "backup": str(made.path), "bytes": made.bytes,
                   "schema_version": made.schema_version, "events": made.events})  # fmt: skip
        return
    click.echo(
        f"backed up {path} to {made.path}: {made.bytes} bytes, {made.events} events, schema version"
        f" {made.schema_version}"
    )


def store_at(where: str, option: str) -> StoreConfig:
    """A PATH (an SQLite file) or a postgresql:// URL given on the command line; exit 2 for a URL it cannot use."""
    if not where.startswith(("postgresql:", "postgres:")):
        return StoreConfig(path=Path(where))
    try:
        return StoreConfig(url=check_store_url(option, where))
    except ConfigError as error:
        fail_config(error)


@store_group.command("copy")
@click.option("--from", "source", metavar="PATH_OR_URL", help="The store to copy (default: the config's store).")
@click.option("--to", "target", metavar="URL", required=True, help="The PostgreSQL database to copy it into.")
@json_option
@config_option
def copy_command(source: str | None, target: str, as_json: bool, config_path: str | None) -> None:
    """Copy a store into a PostgreSQL database: from SQLite when moving up, or from another database.

    Every table's rows are copied as they are (every status, attempt count, cursor, subscription and correspondence
    row), with the leases reset. The source must not be in use: stop the receiver first. The target is brought to
    this release's schema and must be empty, or hold an interrupted copy, which this carries on. The rows of each
    table are counted on both sides at the end. Then point `[store] url` at the target. docs/operations.md: moving
    up.
    """
    frm = store_at(source, "--from") if source else load(config_path).store
    to = store_at(target, "--to")
    if not to.url:
        raise click.BadParameter("must be a postgresql:// URL (a PostgreSQL database)", param_hint="--to")
    source_backend, target_backend = present(open_backend(frm)), open_backend(to)
    if busy := source_backend.in_use():
        fail(f"cannot copy: {busy}")
    try:
        target_backend.migrate()
        result = asyncio.run(_copy(source_backend, target_backend))
    except StoreError as error:
        fail(error)
    if as_json:
        echo_json({"from": source_backend.location, "to": target_backend.location, "resumed": result.resumed,
                   "rows": result.rows})  # fmt: skip
        return
    total = sum(result.rows.values())
    click.echo(f"copied {source_backend.location} to {target_backend.location}: {total} rows, counts checked")
    for table, count in result.rows.items():
        click.echo(f"  {table:<28}{count:>10}")


async def _copy(source_backend: Backend, target_backend: Backend) -> Copied:
    source = await source_backend.connect(read_only=True)
    try:
        target = await target_backend.connect()
        try:
            total = sum((await count_rows(source)).values())
            with click.progressbar(length=total, label="copying", file=sys.stderr) as bar:
                return await copy_store(source, target, bar.update)
        finally:
            await target.close()
    finally:
        await source.close()
