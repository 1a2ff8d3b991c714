"""What is PostgreSQL's own about the store: `[store] url` in the config, the extra it needs, the commands that act on
the store as a whole (`store migrate`, `store backup`), the inbox writer's group commits, and wake-ups across
processes. What both backends share runs on both elsewhere (the `store_config` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result

from receiver.cli.main import main
from receiver.config import StoreConfig
from receiver.store import queue
from receiver.store.backends import open_backend
from receiver.store.errors import EventRefused, StoreError
from receiver.store.inbox import INSERT_COLUMNS, INSERT_EVENT, event_row
from receiver.store.interface import Database
from receiver.store.migrations import LATEST, MIGRATIONS
from receiver.store.postgres.connection import PostgresDatabase, translate
from receiver.store.postgres.migrate import SERVING
from receiver.store.postgres.writer import COPY_FROM, PostgresWriter
from receiver.timeutil import iso_after, now_iso
from tests.ingest_support import make_config, new_event, push, run_cli, running_app, sample, webhook
from tests.store_backends import event, new_schema, rows, run_on, store_toml
from tests.support import wait_until, write_config

PASSWORD = "s3cret/with@odd:chars"


@pytest.fixture
def pg(store_url: str) -> StoreConfig:
    """A fresh, empty schema."""
    return StoreConfig(url=store_url)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """`altinn-receiver ARGS`, in-process, with `env` added to the environment meanwhile."""
    return CliRunner().invoke(main, list(args), env=env)


def config_file(tmp_path: Path, store: str) -> Path:
    return write_config(tmp_path / "receiver.toml", f"[receiver]\nallow_no_secret = true\n\n{store}")


def test_path_and_url_together_are_a_config_error(tmp_path: Path, pg: StoreConfig) -> None:
    path = config_file(tmp_path, f'[store]\npath = "r.db"\nurl = "{pg.url}"\n')
    result = cli("config", "validate", "--config", str(path))
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "config error: store: set path (an SQLite file) or url (a PostgreSQL database), not both"
    )


def test_a_url_without_the_driver_installed_is_a_config_error_naming_the_extra(tmp_path: Path, pg: StoreConfig) -> None:
    path = config_file(tmp_path, store_toml(pg))
    without_psycopg = "import sys; sys.modules['psycopg'] = None; from receiver.cli.main import main; main()"
    result = run_python([sys.executable, "-c", without_psycopg, "config", "validate", "--config", str(path)])
    assert result.returncode == 2
    assert "store.url" in result.stderr and "altinn-receiver[postgres]" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_url_that_is_not_postgresql_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = config_file(tmp_path, f'[store]\nurl = "mysql://u:{quote(PASSWORD, safe="")}@h/db"\n')
    result = cli("config", "validate", "--config", str(path))
    assert result.exit_code == 2
    assert "store.url: must be a postgresql:// URL" in result.stderr
    assert "s3cret" not in result.stderr


def test_the_password_comes_from_the_environment_percent_encoded_and_never_shows(
    tmp_path: Path, pg: StoreConfig
) -> None:
    """`${VAR}` fills in the percent-encoded password; `config show` masks the URL and an error names the store
    without it (the test server trusts loopback, so any password connects)."""
    url = pg.url.replace("postgresql://postgres@", "postgresql://postgres:${DB_PASSWORD}@")
    path = config_file(tmp_path, f"[store]\nurl = {json.dumps(url)}\n")
    env = {"DB_PASSWORD": quote(PASSWORD, safe="")}
    migrated = cli("store", "migrate", "--json", "--config", str(path), env=env)
    assert migrated.exit_code == 0, migrated.stderr
    assert json.loads(migrated.stdout)["to_version"] == LATEST
    assert "s3cret" not in migrated.stdout + migrated.stderr
    shown = cli("config", "show", "--config", str(path), env=env)
    assert shown.exit_code == 0 and "s3cret" not in shown.stdout and 'url = "***"' in shown.stdout
    unreachable = url.replace("127.0.0.1:5432", "127.0.0.1:1")
    path = config_file(tmp_path, f"[store]\nurl = {json.dumps(unreachable)}\n")
    failed = run_cli("events", "list", "--config", str(path), env=env)  # a process: nothing else on its stderr
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: cannot open store postgresql://postgres@127.0.0.1:1/")
    assert "s3cret" not in failed.stderr and "%40" not in failed.stderr and failed.stderr.count("\n") == 1


def test_store_migrate_brings_an_empty_database_up_and_other_commands_refuse_it_before(
    tmp_path: Path, pg: StoreConfig
) -> None:
    path = config_file(tmp_path, store_toml(pg))
    refused = cli("events", "list", "--config", str(path))
    assert refused.exit_code == 1
    assert f"is at schema version 0 and altinn-receiver 0.1.0 needs {LATEST}" in refused.stderr
    assert f"altinn-receiver store migrate --config {path}" in refused.stderr
    dry = cli("store", "migrate", "--dry-run", "--json", "--config", str(path))
    assert json.loads(dry.stdout)["pending"] == [{"version": m.version, "name": m.name} for m in MIGRATIONS]
    applied = cli("store", "migrate", "--config", str(path))
    assert applied.exit_code == 0 and f"now at schema version {LATEST}" in applied.stdout
    again = cli("store", "migrate", "--config", str(path))
    assert "nothing to migrate" in again.stdout
    listed = cli("events", "list", "--config", str(path))
    assert listed.exit_code == 0 and listed.stdout.strip() == "no events match"


def test_store_backup_refuses_and_points_to_pg_dump(tmp_path: Path, pg: StoreConfig) -> None:
    path = config_file(tmp_path, store_toml(pg))
    result = cli("store", "backup", str(tmp_path / "copy.db"), "--config", str(path))
    assert result.exit_code == 1
    assert "pg_dump --format=custom" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "copy.db").exists()


def test_a_schema_with_tables_named_like_the_receivers_is_refused_not_taken_over(pg: StoreConfig) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE inbox (x INTEGER)")
    with pytest.raises(StoreError, match=r"is not an altinn-receiver store.*\(inbox\)"):
        open_backend(pg).migrate()


def test_the_webhook_answers_after_the_commit_and_a_repeat_or_a_handshake_adds_no_event(
    tmp_path: Path, pg: StoreConfig
) -> None:
    config = make_config(tmp_path, store=pg)
    event = new_event()
    with running_app(config) as server, httpx.Client(timeout=10) as client:
        assert push(client, webhook(server.url), event).json() == {"status": "stored"}
        [row] = rows(pg, "SELECT id, status, channel FROM inbox")  # committed before the 200 above
        assert row == {"id": event["id"], "status": "pending", "channel": "push"}
        assert push(client, webhook(server.url), event).json() == {"status": "duplicate"}
        assert push(client, webhook(server.url), sample("validate-subscription.json")).json() == {
            "status": "validation"
        }
        ready = client.get(f"{server.url}/readyz")
        assert ready.status_code == 200 and ready.json()["store"] == "writable"
    assert len(rows(pg, "SELECT id FROM inbox")) == 1 and len(rows(pg, "SELECT * FROM validations")) == 1


@pytest.mark.parametrize("copy_from", [COPY_FROM, 1], ids=["values", "copied"])
@pytest.mark.parametrize("with_a_refused_event", [False, True], ids=["together", "one-by-one"])
def test_one_commit_stores_a_batch_with_its_trace_contexts_and_a_bad_row_fails_alone(
    pg: StoreConfig, with_a_refused_event: bool, copy_from: int
) -> None:
    """PostgreSQL refuses a NUL character in text: that event gets its own error (`EventRefused`), the others of its
    batch are committed, a repeated id is a duplicate; the new events' trace contexts are stored with them, whether
    the batch is written together or one job at a time, in its statement or copied (`COPY`) first."""
    backend = open_backend(pg)
    backend.migrate()
    good = [event(f"instance-{n}") for n in range(5)]
    bad = dataclasses.replace(event("bad"), subject="nul\x00here")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def main() -> list[bool | BaseException]:
        writer = PostgresWriter(pg.url, copy_from=copy_from)
        try:
            assert await writer.insert_event(good[0], "push")  # before traces: no context
            batch = [*good[1:3], *([bad] if with_a_refused_event else []), *good[3:], good[0]]
            futures = [writer.insert_event(e, "push", parent) for e in batch]  # queued at once: one batch
            futures.append(writer.record_validation("validation-1", "sub-1", "https://platform.example/x"))
            return list(await asyncio.gather(*futures, return_exceptions=True))
        finally:
            await writer.aclose()

    outcomes = asyncio.run(main())
    refusals = [outcomes.pop(2)] if with_a_refused_event else []
    assert outcomes == [True, True, True, True, False, True]
    assert len(refusals) == with_a_refused_event
    assert all(isinstance(refusal, EventRefused) and "NUL" in str(refusal) for refusal in refusals)
    assert {row["id"] for row in rows(pg, "SELECT id FROM inbox")} == {e.id for e in good}
    stored = {row["id"]: row["traceparent"] for row in rows(pg, "SELECT id, traceparent FROM inbox_traces")}
    assert stored == {e.id: parent for e in good[1:]}
    assert len(rows(pg, "SELECT * FROM validations")) == 1


def test_a_page_copied_is_stored_in_its_order_and_its_repeats_are_duplicates(pg: StoreConfig) -> None:
    """A batch of `COPY_FROM` events or more (a page of catch-up) goes through `COPY`: its rows get their `seq` in
    the page's order, an id already stored or repeated in the page is a duplicate, and the next page copies again."""
    backend = open_backend(pg)
    backend.migrate()
    page = [event(f"instance-{n % 7}") for n in range(COPY_FROM + 50)]
    again = [*page[:3], page[5], event("instance-new"), *[event(f"late-{n}") for n in range(COPY_FROM)]]

    async def main() -> tuple[list[bool], list[bool]]:
        writer = await backend.writer()
        try:
            first = await asyncio.gather(*writer.insert_events([*page, page[0]], "catchup"))
            return list(first), list(await asyncio.gather(*writer.insert_events(again, "catchup")))
        finally:
            await writer.aclose()

    first, second = asyncio.run(main())
    assert first == [True] * len(page) + [False]
    assert second == [False] * 4 + [True] * (len(again) - 4)
    stored = [row["id"] for row in rows(pg, "SELECT id FROM inbox ORDER BY seq")]
    assert stored == [e.id for e in page] + [e.id for e in again[4:]]


def test_a_commit_in_another_process_wakes_a_listener(tmp_path: Path, pg: StoreConfig) -> None:
    backend = open_backend(pg)
    backend.migrate()
    other = new_schema(pg.url.partition("?")[0])  # the same database, another store: its commits do not wake
    open_backend(StoreConfig(url=other)).migrate()

    async def main() -> list[str]:
        woken: list[str] = []
        stop = await backend.listen(lambda: woken.append("woken"))
        try:
            await asyncio.to_thread(wait_until, lambda: woken, message="the wake-up for the LISTEN itself")
            woken.clear()
            await asyncio.to_thread(insert_in_a_process, StoreConfig(url=other))
            await asyncio.sleep(0.5)  # nothing to wait for: the other schema's commit must not arrive
            assert woken == []
            await asyncio.to_thread(insert_in_a_process, pg)
            await asyncio.to_thread(wait_until, lambda: woken, message="the wake-up for the other process's commit")
            return woken
        finally:
            await stop()

    assert asyncio.run(main()) == ["woken"]


def insert_in_a_process(store: StoreConfig) -> None:
    """`altinn-receiver`'s own insert, from a process of its own."""
    script = (
        "import asyncio, sys, json\n"
        "from receiver.config import StoreConfig\n"
        "from receiver.store.backends import open_backend\n"
        "from receiver.store.inbox import insert_event\n"
        "from tests.store_backends import event\n"
        "async def main():\n"
        "    db = await open_backend(StoreConfig(url=sys.argv[1])).connect()\n"
        "    await insert_event(db, event('elsewhere'), 'push')\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
    )
    result = run_python([sys.executable, "-c", script, store.url])
    assert result.returncode == 0, result.stderr


def run_python(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


HOT_BACKLOG = f"""
    INSERT INTO inbox ({", ".join(INSERT_COLUMNS)}, status)
    SELECT gen_random_uuid()::text, 't', 's', '', 'urn:altinn:resource:r', 'hot',
           '2026-01-05T09:00:00.' || lpad(n::text, 6, '0') || 'Z', :raw, stamp, 'push', stamp, 'pending'
    FROM generate_series(0, :backlog) AS n,
         LATERAL (SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS stamp) AS t
"""
"""The first event of the instance `hot` and `backlog` more behind it, in time order, as `event()` makes them, each
received at a moment of its own."""


def claim_buffers(store: StoreConfig, backlog: int) -> tuple[int, set[str]]:
    """A store with `backlog` events of one instance behind its first (claimed, running) and 4 events of others: the
    buffers a claim of 4 reads (both of its statements, as PostgreSQL counts them), and the instances it took."""
    backend = open_backend(store)
    backend.migrate()
    others = [event(f"other-{n}", f"2026-01-05T10:00:0{n}Z") for n in range(4)]

    async def fill(db: Database) -> None:
        # One statement: quick to fill.
        await db.execute(HOT_BACKLOG, {"backlog": backlog, "raw": event("hot").raw})
        await db.execute_many(INSERT_EVENT, [event_row(e, "push", now_iso()) for e in others])
        [first] = await queue.claim(db, "worker", 600, limit=1)
        assert first.resourceinstance == "hot"

    run_on(store, fill)
    params = {"now": now_iso(), "lease_until": iso_after(600), "owner": "worker", "limit": 4, "scan": 48}
    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
    with psycopg.connect(store.url, autocommit=True) as conn, conn.transaction():
        conn.execute("ANALYZE")
        [[first]] = conn.execute(explain + translate(queue.PG_CANDIDATES), params).fetchone() or [[{}]]
        candidates = [row[0] for row in conn.execute(translate(queue.PG_CANDIDATES), params).fetchall()]
        claim = translate(queue.PG_CLAIM)
        [[second]] = conn.execute(explain + claim, {**params, "candidates": candidates}).fetchone() or [[{}]]
        claimed = conn.execute("SELECT resourceinstance FROM inbox WHERE lease_owner = 'worker'").fetchall()
    plans: list[dict[str, Any]] = [dict(first)["Plan"], dict(second)["Plan"]]
    buffers = sum(int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"]) for plan in plans)
    return buffers, {row[0] for row in claimed} - {"hot"}


def test_a_claim_reads_as_much_with_20000_events_behind_a_busy_instance_as_with_2000(postgres_database: str) -> None:
    """What grows is only the depth of the indexes (0 events behind it: 79 buffers; 2 000: 153; 8 000: 153;
    20 000: 157): the claim walks the heads, not the busy instance's backlog, which would make it ten times as
    much."""
    some, some_took = claim_buffers(StoreConfig(url=new_schema(postgres_database)), 2000)
    many, many_took = claim_buffers(StoreConfig(url=new_schema(postgres_database)), 20000)
    assert some_took == many_took == {f"other-{n}" for n in range(4)}
    assert many <= some * 1.1, f"{many} buffers with 20 000 events waiting, {some} with 2 000"


def test_a_lost_connection_fails_only_the_pushes_of_its_commit_and_the_next_one_reconnects(
    tmp_path: Path, pg: StoreConfig
) -> None:
    config = make_config(tmp_path, store=pg)
    lost, after = new_event(), new_event()
    with running_app(config) as server, httpx.Client(timeout=20) as client:
        assert push(client, webhook(server.url), new_event()).status_code == 200
        with psycopg.connect(pg.url, autocommit=True) as admin:  # the writer's connection holds the serving lock
            [(killed,)] = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND objid = hashtext(current_schema())::oid",  # this store's: other tests serve theirs meanwhile
                (SERVING,),
            ).fetchall()
        assert killed
        refused = push(client, webhook(server.url), lost)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "send it again later" in refused.json()["detail"]
        assert push(client, webhook(server.url), after).status_code == 200
        assert client.get(f"{server.url}/readyz").json()["store"] == "writable"
    stored = {row["id"] for row in rows(pg, "SELECT id FROM inbox")}
    assert after["id"] in stored and lost["id"] not in stored


def test_what_the_url_leaves_out_comes_from_libpqs_environment(tmp_path: Path, postgres_database: str) -> None:
    """`PGOPTIONS` (as `PGPASSWORD`, `PGSSLMODE`, … would) reaches the connection: the tables go into its schema."""
    schema_url = new_schema(postgres_database)
    schema = schema_url.rpartition("search_path%3D")[2]
    path = config_file(tmp_path, f'[store]\nurl = "{postgres_database}"\n')
    migrated = cli("store", "migrate", "--config", str(path), env={"PGOPTIONS": f"-csearch_path={schema}"})
    assert migrated.exit_code == 0, migrated.stderr
    assert rows(StoreConfig(url=schema_url), "SELECT COUNT(*) AS n FROM schema_migrations") == [{"n": LATEST}]


def test_an_open_cancelled_while_it_connects_leaves_no_task_of_its_pool_behind() -> None:
    """Ctrl-C in `send --follow` while it opened the store once hung the command: the pool's tasks were left running,
    and asyncio.run waited for them forever. Here a server takes the connection and answers nothing until the open is
    cancelled, then drops it."""

    async def tasks_left_after_a_cancelled_open(silent: socket.socket) -> set[asyncio.Task[Any]]:
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/never"
        opening = asyncio.create_task(PostgresDatabase.open(url))
        # The pool's scheduler and workers are running once it waits for its first connection.
        while len(asyncio.all_tasks()) < 4 and not opening.done():
            await asyncio.sleep(0.01)
        assert not opening.done(), "the open ended before it was cancelled"
        opening.cancel()
        silent.close()  # the connection attempt in flight fails at once
        with pytest.raises(asyncio.CancelledError):
            await opening
        left = asyncio.all_tasks() - {asyncio.current_task()}
        if left:
            await asyncio.wait(left, timeout=5)
        return {task for task in left if not task.done()}

    loop = asyncio.new_event_loop()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        left = loop.run_until_complete(tasks_left_after_a_cancelled_open(silent))
    assert left == set(), f"tasks still running: {sorted(task.get_name() for task in left)}"
    loop.close()
