"""`altinn-receiver tail`: the event log from a real store file, listed and followed live."""

from __future__ import annotations

import os
import pty
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from receiver.config import StoreConfig
from receiver.store.inbox import EventFilter
from receiver.store.interface import Database
from receiver.store.operations import ChangeFeed
from receiver.timeutil import parse_iso, to_iso
from tests.ops_support import OTHER_RESOURCE, PUBLISHED, READ, OpsStore, json_lines
from tests.support import REPO


@pytest.fixture
def store(tmp_path: Path, store_config: StoreConfig) -> OpsStore:
    """An SQLite file or a PostgreSQL schema: each test runs on both."""
    return OpsStore(tmp_path, store=store_config)


def test_tail_lists_the_latest_twenty_oldest_first_as_json_lines_when_piped(store: OpsStore) -> None:
    for i in range(25):
        store.add(f"event-{i:02}")
    result = store.cli("tail")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [line["id"] for line in lines] == [f"event-{i:02}" for i in range(5, 25)]
    assert lines[0]["status"] == "pending" and lines[0]["type"] == PUBLISHED
    assert "raw" not in lines[0] and "lease_owner" not in lines[0]


def test_tail_filters_by_status_type_resource_and_received_since(store: OpsStore) -> None:
    store.add("published-old")
    store.received_ago("published-old", 2 * 3600)
    store.add("published-dead")
    store.set("published-dead", status="dead", attempts=12, last_error="404 from the correspondence API")
    store.add("read-other", type_=READ, resource=OTHER_RESOURCE)

    def ids(*args: str) -> list[str]:
        result = store.cli("tail", *args)
        assert result.exit_code == 0, result.output
        return [line["id"] for line in json_lines(result.stdout)]

    assert ids("--status", "dead") == ["published-dead"]
    assert ids("--type", "*.correspondencereceiverread") == ["read-other"]
    assert ids("--type", "no.altinn.correspondence.correspondencepub*") == ["published-old", "published-dead"]
    assert ids("--resource", OTHER_RESOURCE) == ["read-other"]
    assert ids("--since", "1h") == ["published-dead", "read-other"]
    assert ids("-n", "1") == ["read-other"]


def test_tail_rejects_a_bad_duration_and_an_unknown_status(store: OpsStore) -> None:
    result = store.cli("tail", "--since", "yesterday")
    assert result.exit_code == 2
    assert "--since" in result.stderr and "48h" in result.stderr
    result = store.cli("tail", "--status", "lost")
    assert result.exit_code == 2
    assert "dead" in result.stderr


def test_tail_without_a_store_says_where_it_looked_and_creates_nothing(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    result = store.cli("tail")
    assert result.exit_code == 1
    assert str(store.path) in result.stderr and "store.path" in result.stderr
    assert not store.path.exists()


def on_a_terminal(store: OpsStore, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """`tail` with its stdout on a pseudo-terminal, as a person runs it; the lines it printed."""
    leader, follower = pty.openpty()
    process = subprocess.run(
        [sys.executable, "-m", "receiver", "tail", "--config", str(store.config), *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        cwd=REPO,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )
    os.close(follower)
    output = os.read(leader, 65536).decode()
    os.close(leader)
    assert process.returncode == 0, process.stderr
    return output.splitlines()


def test_tail_on_a_terminal_is_a_table_with_a_header_coloured_by_status(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)  # how it is shown, on one backend
    store.add("fine")
    store.set("fine", status="done", attempts=1)
    store.add("broken")
    store.set("broken", status="dead", attempts=3, last_error="handler gave up")
    header, fine, broken, error = on_a_terminal(store)
    assert header.split() == ["TIME", "STATUS", "TRY", "TYPE", "EVENT"]
    assert "\x1b[32m" in fine and "fine" in fine  # green
    assert "\x1b[31m" in broken and "broken" in broken  # red
    assert error.strip() == "error: handler gave up"
    assert error.index("error") == header.index("STATUS")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_tail_on_a_terminal_fits_120_columns_keeps_its_columns_aligned_and_honours_no_color(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)  # how it is shown, on one backend
    long_type = "no.altinn.correspondence.correspondencereceiverneverconfirmed"
    store.add("0f8f1b7e-0d6c-4c48-9a7f-6f2a9d1c2b11", type_=long_type)
    store.set("0f8f1b7e-0d6c-4c48-9a7f-6f2a9d1c2b11", status="retrying", attempts=11, last_error="x" * 300)
    store.add("short", type_="dialogporten.dialog.activity.created.v1.with.a.very.long.tail")
    lines = on_a_terminal(store, env={"NO_COLOR": "1"})
    assert not any(ANSI.search(line) for line in lines)
    header, rows = lines[0], [line for line in lines[1:] if not line.lstrip().startswith("error:")]
    assert all(len(line) <= 120 for line in lines), [len(line) for line in lines]
    for column in ("STATUS", "TYPE", "EVENT"):  # each row's cell starts where its title does
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in rows), column
    assert "  correspondencereceiverneverconfirmed  " in rows[0], "Altinn's longest type fits whole"
    assert "dialogporten.dialog.activity.created.v1.with"[:35] + "…" in rows[1]
    assert "0f8f1b7e-0d6c-4c48-9a7f-6f2a9d1c2b11" in rows[0] and rows[0].split()[2] == "11"
    assert lines[2].rstrip().endswith("…")


class Follower:
    """`tail -f` in a subprocess, its stdout lines collected by a thread with the moment each arrived."""

    def __init__(self, store: OpsStore, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "receiver", "tail", "-f", "--config", str(store.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line))

    def next(self, timeout: float = 10.0) -> tuple[float, dict[str, object]]:
        arrived, line = self.lines.get(timeout=timeout)
        return arrived, json_lines(line)[0]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=10)


def test_tail_follow_shows_new_events_and_status_changes_within_a_second(store: OpsStore) -> None:
    store.add("before")
    follower = Follower(store)
    try:
        _, first = follower.next()
        assert first["id"] == "before"

        written = time.monotonic()
        store.add("new")
        arrived, line = follower.next()
        assert line["id"] == "new" and line["status"] == "pending"
        new_latency = arrived - written

        written = time.monotonic()
        store.set("before", status="dead", attempts=12, last_error="gone")
        arrived, line = follower.next()
        assert (line["id"], line["status"], line["last_error"]) == ("before", "dead", "gone")
        change_latency = arrived - written

        assert follower.lines.empty(), "each change is shown once"
        assert new_latency < 1.0 and change_latency < 1.0, (new_latency, change_latency)
    finally:
        code = follower.stop()
    assert code == 130, "Ctrl-C: 128 + SIGINT, as every command"
    assert follower.process.stderr is not None and "Traceback" not in follower.process.stderr.read()


def test_tail_follow_applies_the_filters_to_changes(store: OpsStore) -> None:
    store.add("dead-before")
    store.set("dead-before", status="dead")
    store.add("a")
    store.add("b")
    follower = Follower(store, "--status", "dead", "-n", "1")
    try:
        assert follower.next()[1]["id"] == "dead-before"
        store.set("a", status="done")
        store.set("b", status="dead", last_error="boom")
        _, line = follower.next()
        assert (line["id"], line["status"]) == ("b", "dead")
    finally:
        assert follower.stop() == 130
    assert follower.lines.empty()


def test_feed_shows_a_change_committed_late_with_an_older_stamp_once(store: OpsStore) -> None:
    store.add("first")
    store.add("late")
    newest = parse_iso(store.get("first").updated_at)
    store.set("late", updated_at=to_iso(newest - timedelta(seconds=2)))
    committed_late = to_iso(newest - timedelta(seconds=1))

    async def scenario(conn: Database) -> list[list[str]]:
        feed = ChangeFeed(conn, EventFilter())
        await feed.start()
        polls = [[r.id for r in await feed.poll()]]
        # Another writer took its timestamp a second before the newest change, but commits only now.
        await conn.execute(
            "UPDATE inbox SET status = 'dead', updated_at = :at WHERE id = 'late'", {"at": committed_late}
        )
        polls.append([r.id for r in await feed.poll()])
        polls.append([r.id for r in await feed.poll()])
        return polls

    assert store.run(scenario) == [[], ["late"], []]


def test_feed_starts_after_what_is_already_stored(store: OpsStore) -> None:
    store.add("old")

    async def scenario(conn: Database) -> list[str]:
        feed = ChangeFeed(conn, EventFilter())
        await feed.start()
        return [r.id for r in await feed.poll()]

    assert store.run(scenario) == []
