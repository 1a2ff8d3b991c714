"""`events replay` and `events dead` on a real store file, and beside a running receiver."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from receiver.config import StoreConfig
from receiver.store.interface import Database
from tests.ingest_support import make_config, new_event, push, running_app, webhook
from tests.ops_support import READ, OpsStore, json_lines


@pytest.fixture
def store(tmp_path: Path, store_config: StoreConfig) -> OpsStore:
    """An SQLite file or a PostgreSQL schema: each test runs on both."""
    return OpsStore(tmp_path, store=store_config)


def dead(store: OpsStore, event_id: str, error: str = "404 from the correspondence API", **kwargs: str) -> None:
    store.add(event_id, **kwargs)
    store.set(event_id, status="dead", attempts=12, last_error=error, next_attempt_at="", lease_owner="")


def test_replay_dead_puts_them_back_as_pending_with_attempts_reset_and_the_error_kept(store: OpsStore) -> None:
    dead(store, "d1")
    dead(store, "d2", error="handler crashed")
    store.add("finished")
    store.set("finished", status="done", attempts=1)

    result = store.cli("events", "replay", "--status", "dead", "--yes")

    assert result.exit_code == 0, result.output
    assert "2 event(s) to replay" in result.stdout and "replayed 2" in result.stdout
    for event_id, error in (("d1", "404 from the correspondence API"), ("d2", "handler crashed")):
        record = store.get(event_id)
        assert (record.status, record.attempts, record.next_attempt_at) == ("pending", 0, "")
        assert record.last_error == error
        assert record.updated_at > record.received_at
    assert store.get("finished").status == "done"


def test_replay_dry_run_lists_what_it_would_do_and_changes_nothing(store: OpsStore) -> None:
    dead(store, "d1")
    before = store.get("d1")
    result = store.cli("events", "replay", "--status", "dead", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "d1" in result.stdout and "404 from the correspondence API" in result.stdout
    assert "dry run: nothing changed" in result.stdout
    assert store.get("d1") == before


def test_replay_without_a_terminal_refuses_unless_yes(store: OpsStore) -> None:
    dead(store, "d1")
    result = store.cli("events", "replay", "--status", "dead")
    assert result.exit_code == 1
    assert "--yes" in result.stderr
    assert store.get("d1").status == "dead"


def test_replay_narrows_by_type_and_received_since(store: OpsStore) -> None:
    dead(store, "published-recent")
    dead(store, "read-recent", type_=READ)
    dead(store, "published-old")
    store.received_ago("published-old", 3 * 86400)

    result = store.cli(
        "events", "replay", "--status", "dead", "--type", "*published", "--since", "48h", "--yes", "--json"
    )

    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout) == [
        {
            "dry_run": False,
            "selected": ["published-recent"],
            "replayed": 1,
            "left_alone": [],
            "pruned": [],
            "refused": [],
        }
    ]
    assert [store.get(i).status for i in ("published-recent", "read-recent", "published-old")] == [
        "pending",
        "dead",
        "dead",
    ]


def test_replay_by_id_replays_exactly_those_and_leaves_a_running_one_alone(store: OpsStore) -> None:
    dead(store, "d1")
    dead(store, "d2")
    store.add("busy")
    store.set(
        "busy", status="processing", attempts=1, lease_owner="worker-1", lease_until="2999-01-01T00:00:00.000000Z"
    )

    result = store.cli("events", "replay", "d2", "busy", "--yes")

    assert result.exit_code == 0, result.output
    assert "1 event(s) are being processed right now and are left alone" in result.stdout
    assert store.get("d2").status == "pending"
    assert store.get("d1").status == "dead"
    busy = store.get("busy")
    assert (busy.status, busy.lease_owner) == ("processing", "worker-1")


def test_replay_of_an_unknown_id_names_it_and_replays_nothing(store: OpsStore) -> None:
    dead(store, "d1")
    result = store.cli("events", "replay", "d1", "no-such-event", "--yes")
    assert result.exit_code == 1
    assert "no-such-event" in result.stderr and "events list" in result.stderr
    assert store.get("d1").status == "dead"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((), "--status dead"),
        (("d1", "--status", "dead"), "not both"),
        (("--status", "pending"), "'pending' is not one of"),
    ],
)
def test_replay_explains_a_selection_it_cannot_use(store: OpsStore, args: tuple[str, ...], complaint: str) -> None:
    dead(store, "d1")
    result = store.cli("events", "replay", *args, "--yes")
    assert result.exit_code == 2
    assert complaint in result.stderr
    assert store.get("d1").status == "dead"


def test_replaying_many_shows_progress_on_stderr_and_keeps_stdout_clean(store: OpsStore) -> None:
    async def many_dead(conn: Database) -> None:
        await conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
            " INSERT INTO inbox (id, type, source, raw, received_at, channel, status, attempts, last_error, updated_at)"
            " SELECT 'bulk-' || i, 'no.altinn.correspondence.correspondencepublished', 's',"
            """ '{"specversion":"1.0","id":"bulk-' || i || '","type":"published","source":"s"}',"""
            " '2026-01-01T00:00:00.000000Z', 'push', 'dead', 12, 'boom', '2026-01-01T00:00:00.000000Z' FROM n"
        )

    store.run(many_dead)
    result = store.cli("events", "replay", "--status", "dead", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert "replaying" in result.stderr
    (summary,) = json_lines(result.stdout)
    assert summary["replayed"] == 1000 and len(summary["selected"]) == 1000
    assert store.run(lambda conn: _count(conn, "dead")) == 0


async def _count(conn: Database, status: str) -> int:
    [row] = await conn.fetch("SELECT COUNT(*) AS n FROM inbox WHERE status = :status", {"status": status})
    return int(row["n"])


def test_events_dead_lists_dead_events_with_their_last_error(store: OpsStore) -> None:
    dead(store, "d1", error="correspondence 404")
    store.add("ok")
    table = store.cli("events", "dead")
    assert table.exit_code == 0, table.output
    assert "d1" in table.stdout and "correspondence 404" in table.stdout and "ok" not in table.stdout.split()
    lines = store.cli("events", "dead", "--json")
    assert [(line["id"], line["last_error"]) for line in json_lines(lines.stdout)] == [("d1", "correspondence 404")]


def test_events_dead_says_when_there_are_none(store: OpsStore) -> None:
    store.add("ok")
    result = store.cli("events", "dead")
    assert result.exit_code == 0 and "no dead events" in result.stdout


def test_replay_works_while_the_server_takes_pushes(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = OpsStore(tmp_path, config)
    with running_app(config) as server, httpx.Client() as client:
        first = [new_event() for _ in range(50)]
        for event in first:
            assert push(client, webhook(server.url), event).status_code == 200
        for event in first:
            store.set(event["id"], status="dead", attempts=3, last_error="boom")

        stop = threading.Event()
        answers: list[int] = []

        def keep_pushing() -> None:
            while not stop.is_set():
                answers.append(push(client, webhook(server.url), new_event()).status_code)

        pusher = threading.Thread(target=keep_pushing)
        pusher.start()
        try:
            result = store.cli("events", "replay", "--status", "dead", "--yes")
        finally:
            stop.set()
            pusher.join()

    assert result.exit_code == 0, result.output
    assert "replayed 50" in result.stdout
    assert all(store.get(event["id"]).status == "pending" for event in first)
    assert answers and set(answers) == {200}
