"""A damaged store, or a store file that exists but is empty: `serve` refuses it with one line that says how to
recover, never starting on it; every command that reads the store says "damaged" in one line (exit 1), never a
traceback; and with the check at start turned off, the writer still refuses to acknowledge into a damaged file.

Each store is a real migrated one with real events, damaged where SQLite keeps them (tests/hostile_support.py).
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from altinn_sim import SimSettings, running_simulator
from receiver.cli.main import main
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import ReceiverSetup, register_identity
from receiver.server_thread import free_port
from tests.hostile_support import damage_header, damage_page, filled_store, inbox_pages, quick_check_rows
from tests.ingest_support import ServeProcess, config_text, new_event, push, run_cli, webhook
from tests.support import write_config

RECOVERY_HINTS = ("altinn-receiver store backup", ".recover", "docs/operations.md")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def damaged_leaf(path: Path) -> list[str]:
    """A store whose last inbox leaf (where new events go) holds garbage: SQLite still inserts there."""
    ids = filled_store(path)
    damage_page(path, inbox_pages(path)[1])
    return ids


def damaged_root(path: Path) -> list[str]:
    """A store whose inbox table cannot be walked at all: its root page holds garbage."""
    ids = filled_store(path)
    with closing(sqlite3.connect(path)) as conn, conn:  # some dead events, for `events dead` and replay to read
        conn.executemany("UPDATE inbox SET status = 'dead' WHERE id = ?", [(i,) for i in ids[:5]])
    damage_page(path, inbox_pages(path)[0])
    return ids


def garbage_header(path: Path) -> list[str]:
    ids = filled_store(path)
    damage_header(path)
    return ids


@pytest.mark.parametrize("damage", [damaged_leaf, garbage_header], ids=["random-bytes-in-a-leaf", "header"])
def test_serve_refuses_a_damaged_store_with_one_line_saying_how_to_recover(tmp_path: Path, damage: object) -> None:
    store = tmp_path / "receiver.db"
    assert callable(damage)
    damage(store)
    assert quick_check_rows(store) != ["ok"]
    before = digest(store)
    config = write_config(tmp_path / "receiver.toml", config_text(store, free_port()))

    result = run_cli("serve", "--config", str(config))

    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"error: store {store} is damaged")
    for hint in RECOVERY_HINTS:
        assert hint in line
    assert digest(store) == before, "a refused store is left exactly as it was"


def test_serve_logs_how_long_the_check_of_an_existing_store_took(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    filled_store(serve.store, events=2000)
    size = serve.store.stat().st_size
    with serve:
        pass
    [checked] = [line for line in serve.log_lines() if line["msg"] == "store checked"]
    assert checked["store"] == str(serve.store)
    assert checked["bytes"] == size
    assert 0 <= checked["seconds"] < 30


@pytest.mark.parametrize("how", ["serve", "store migrate", "events list"])
def test_a_store_file_that_exists_but_is_empty_is_refused_and_left_empty(tmp_path: Path, how: str) -> None:
    store = tmp_path / "receiver.db"
    store.touch()
    config = write_config(tmp_path / "receiver.toml", config_text(store, free_port()))

    result = run_cli(*how.split(), "--config", str(config))

    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"error: store {store} is an empty file")
    assert "restore" in line and "backup" in line
    assert store.stat().st_size == 0, "an empty store file never silently becomes a new store"


def inbox_readers(config: Path, event_id: str) -> list[list[str]]:
    """The commands that read the inbox, and those that check the whole store before they copy or migrate it."""
    return [
        ["events", "list"],
        ["events", "show", event_id],
        ["events", "dead"],
        ["events", "replay", "--status", "dead", "--dry-run"],
        ["stats"],
        ["tail"],
        ["store", "backup", str(config.parent / "copy.db")],
        ["store", "migrate"],
    ]


# Commands that open the store but read other tables: a damaged inbox page is not theirs to meet, a damaged header is.
OPENING_THE_STORE = [["catchup"], ["subscriptions", "list"]]


@pytest.mark.parametrize(
    ("damage", "everything"),
    [(damaged_root, False), (garbage_header, True)],
    ids=["random-bytes-in-the-root", "header"],
)
def test_every_command_that_reads_a_damaged_store_says_damaged_in_one_line(
    tmp_path: Path, damage: object, everything: bool
) -> None:
    store = tmp_path / "receiver.db"
    assert callable(damage)
    ids = damage(store)
    config = tmp_path / "receiver.toml"
    commands = inbox_readers(config, ids[-1]) + (OPENING_THE_STORE if everything else [])
    with running_simulator(SimSettings(seed_correspondences=0)) as sim:
        identity = register_identity(sim, tmp_path)
        ReceiverSetup(sim.url, identity, store, [SubscriptionConfig("urn:altinn:resource:hostile-store")]).write(config)
        results = {
            " ".join(args): CliRunner().invoke(main, [*args, "--config", str(config)], catch_exceptions=False)
            for args in commands
        }
    for command, result in results.items():
        assert result.exit_code == 1, f"{command}: exit {result.exit_code}\n{result.output}"
        line = one_line(result.stderr)
        assert line.startswith("error: ") and "damaged" in line, f"{command}: {line}"
        assert ".recover" in line, f"{command}: {line}"
    assert not (tmp_path / "copy.db").exists()


def test_with_the_check_turned_off_the_writer_refuses_to_acknowledge_into_a_damaged_store(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    damaged_root(serve.store)
    serve.config.write_text(serve.config.read_text() + "check_on_start = false\n")
    with serve, httpx.Client(timeout=30) as client:
        ready = client.get(f"{serve.url}/readyz")
        pushed = [push(client, webhook(serve.url), new_event()) for _ in range(5)]
        again = client.get(f"{serve.url}/readyz")
    assert ready.status_code == 503, "ready on a store whose inbox cannot be written"
    assert ready.json()["store"].startswith("the store file is damaged")
    assert [response.status_code for response in pushed] == [503] * 5
    assert "damaged" in pushed[0].json()["detail"]
    assert again.status_code == 503
    errors = [line for line in serve.log_lines() if line["level"] == "error"]
    # Said once by each of serve's processes (the webhook's and the worker's inbox writer), not once per push.
    assert [line["msg"] for line in errors] == ["the store can no longer be written"] * 2, errors
    assert ".recover" in errors[0]["reason"]
