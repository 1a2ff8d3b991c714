"""Control characters in what the store holds never reach a terminal raw: ids, types, sources and errors with ESC,
CR, BEL, C1 controls and bidi overrides are escaped in every human-readable output of the real command line (they
were written raw by `events list`: colour, a new window title, forged lines), and `--json` stays exact JSON."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.config import SubscriptionConfig
from receiver.store import db, state
from receiver.text import printable
from tests.ingest_support import CLI, make_config, new_event, push, running_app, webhook

# What a terminal acts on: C0 controls but the newline, DEL, C1 controls, bidi embeddings, overrides and isolates,
# line and paragraph separators.
ACTS_ON_TERMINAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
HOSTILE_ID = "evt\x1b]0;owned\x07\rFORGED LINE\x9b2J\u202efdp.exe"
HOSTILE_TYPE = "no.altinn.correspondence.\x1b[31mred\x1b[0m\u2028published"
HOSTILE_INSTANCE = "inst\x08\x08\x85\u2066x"
HOSTILE_ERROR = "boom\x1b[1A\x1b[2K\rall fine\u202e"


@dataclass
class Store:
    config: Path
    path: Path

    def cli(self, *args: str) -> str:
        """The command's stdout as written: bytes decoded without turning CR into a newline."""
        result = subprocess.run(
            [*CLI, *args, "--config", str(self.config)], capture_output=True, timeout=30,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.decode()

    def json_lines(self, *args: str) -> list[Any]:
        """JSON lines, split on newlines only (`str.splitlines` also splits at U+2028, which JSON text may hold)."""
        return [json.loads(line) for line in self.cli(*args).split("\n") if line]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Hostile events pushed through the real webhook (it accepts them: they can be stored), one made dead with a
    hostile error as a handler could have written it, and a subscription with a hostile resource."""
    folder = tmp_path_factory.mktemp("hostile-output")
    config = make_config(folder)
    events = [
        new_event(id=HOSTILE_ID, type=HOSTILE_TYPE, resourceinstance=HOSTILE_INSTANCE, source="https://x/\x1bc"),
        new_event(id="evt-dead\x07\x1b[8m", type=HOSTILE_TYPE, subject="urn:\u202eevil"),
    ]
    with running_app(config) as server, httpx.Client(timeout=10) as client:
        for event in events:
            assert push(client, webhook(server.url), event).status_code == 200
    with sqlite3.connect(config.store.path) as conn:
        conn.execute(
            "UPDATE inbox SET status = 'dead', attempts = 3, last_error = ? WHERE id = ?",
            (HOSTILE_ERROR, events[1]["id"]),
        )

    async def subscription() -> None:
        conn = await db.connect(config.store.path)
        try:
            key = SubscriptionConfig("urn:altinn:resource:\x1b]0;title\x07x", subject="\u202eabc")
            await state.save_subscription(conn, 7, key, "https://x/events", "", validated=True)
        finally:
            await conn.close()

    asyncio.run(subscription())
    assert config.source is not None
    yield Store(Path(config.source), config.store.path)


def assert_harmless(output: str, *shown: str) -> None:
    """Nothing a terminal acts on is in `output`, and each of `shown` is there as `printable` writes it."""
    found = ACTS_ON_TERMINAL.search(output)
    assert found is None, f"{found.group()!r} at {found.start()} in {output!r}"
    for value in shown:
        assert printable(value) in output


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("events", "list"), [HOSTILE_ID, HOSTILE_INSTANCE]),
        (("events", "show", HOSTILE_ID), [HOSTILE_ID, HOSTILE_TYPE, HOSTILE_INSTANCE]),
        (("events", "dead"), [HOSTILE_ERROR]),
        (("events", "replay", "--status", "dead", "--dry-run"), [HOSTILE_ERROR]),
        (("stats",), ["urn:altinn:resource:\x1b]0;title\x07x", HOSTILE_TYPE]),
    ],
    ids=lambda value: " ".join(value[:2]) if isinstance(value, tuple) else "",
)
def test_human_output_escapes_what_a_terminal_would_act_on(
    store: Store, args: tuple[str, ...], shown: list[str]
) -> None:
    assert_harmless(store.cli(*args), *shown)


def test_tail_on_a_terminal_escapes_them_too(store: Store) -> None:
    """`tail` prints its table only to a terminal: run it on a pseudo-terminal."""
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [*CLI, "tail", "--config", str(store.config)],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    ) as process:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end closed: the command has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
    os.close(controller)
    output = b"".join(chunks).decode().replace("\r\n", "\n")  # the terminal's own line endings
    assert "TIME" in output
    assert_harmless(output, HOSTILE_ID[:12])
    assert printable(HOSTILE_ERROR) in output


def test_json_output_is_exact(store: Store) -> None:
    listed = store.json_lines("events", "list", "--json")
    assert HOSTILE_ID in {row["id"] for row in listed}
    assert {row["type"] for row in listed} == {HOSTILE_TYPE}
    [shown] = store.json_lines("events", "show", HOSTILE_ID, "--json")
    assert shown["resourceinstance"] == HOSTILE_INSTANCE and shown["event"]["source"] == "https://x/\x1bc"
    [dead] = store.json_lines("events", "dead", "--json")
    assert dead["last_error"] == HOSTILE_ERROR
    tailed = store.json_lines("tail")  # not a terminal: JSON lines
    assert {row["id"] for row in tailed} == {row["id"] for row in listed}
    [stats] = store.json_lines("stats", "--json")
    assert stats["subscriptions"][0]["resource"] == "urn:altinn:resource:\x1b]0;title\x07x"
