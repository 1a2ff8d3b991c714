"""The receiver serving on a PostgreSQL store: the default pipelines storing correspondences there (the `store`
handler's PostgreSQL statements, with and without content), and two `serve` processes on one database, one of them
paused past its lease: the other takes the event over, the paused one's outcome is refused, and `store copy`
refuses the store they serve from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from altinn_sim import SimSettings, running_simulator
from receiver.config import StoreConfig
from receiver.server_thread import free_port
from tests.dispatch_plugins import recorded
from tests.dispatch_support import (
    RECIPIENT,
    RECIPIENT_ORG,
    RESOURCE,
    recipient_setup,
    service_owner_setup,
    subscribed_receiver,
    wait_settled,
)
from tests.ingest_support import CLI, SECRET, new_event, run_cli, webhook
from tests.store_backends import new_schema, rows, store_toml
from tests.support import complete_lines, wait_until, write_config


def test_the_default_pipelines_store_what_they_fetch_in_postgresql(tmp_path: Path, store_url: str) -> None:
    """The recipient stores the correspondence with its content; the service owner's fetch without content keeps
    the stored title and content (jsonb on PostgreSQL) and raises the status, on the same store."""
    store = StoreConfig(url=store_url)
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        files = tmp_path / "files"
        extra = f'[handlers.download_attachments]\ndir = "{files}"\n'
        recipient = recipient_setup(sim, tmp_path / "recipient", extra=extra, store_url=store_url)
        with subscribed_receiver(recipient, tmp_path / "recipient"):
            correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title="Vedtak", attachments=1)
            assert list(wait_settled(store, 1).values()) == ["done"]
        [before] = rows(store, "SELECT * FROM correspondences")
        owner = service_owner_setup(sim, tmp_path / "owner", store_url=store_url)
        with subscribed_receiver(owner, tmp_path / "owner"):
            sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()
            assert set(wait_settled(store, 2).values()) == {"done"}
        [after] = rows(store, "SELECT * FROM correspondences")
    assert (before["message_title"], before["status"], after["recipient"]) == ("Vedtak", "Published", RECIPIENT)
    assert (after["message_title"], after["status"]) == ("Vedtak", "AttachmentsDownloaded")
    assert json.loads(after["details"])["content"] == json.loads(before["details"])["content"]
    [attachment] = rows(store, "SELECT * FROM correspondence_attachments")
    assert attachment["correspondence_id"] == correspondence_id and attachment["path"].startswith(str(files))
    assert len(rows(store, "SELECT * FROM correspondence_events")) == 2


class Serving:
    """`altinn-receiver serve` as a process of its own on the store, running `tests.dispatch_plugins:Recorder`."""

    def __init__(self, tmp_path: Path, name: str, store: StoreConfig, record: Path) -> None:
        self.port = free_port()
        self.log = tmp_path / f"{name}.log"
        self.config = write_config(
            tmp_path / f"{name}.toml",
            f'[receiver]\nport = {self.port}\nsecret = "{SECRET}"\n\n{store_toml(store)}\n'
            '[dispatch]\nlease = "1s"\npoll_interval = "50ms"\n\n'
            '[catchup]\nenabled = false\n\n[[pipelines]]\ntypes = ["*"]\nhandlers = ["recorder"]\n\n'
            f'[handlers.recorder]\nuse = "tests.dispatch_plugins:Recorder"\npath = "{record}"\nseconds = "0.6"\n',
        )
        with self.log.open("ab") as out:
            # One process: the test pauses (SIGSTOP) the process that runs the events.
            self.process = subprocess.Popen(
                [*CLI, "serve", "--config", str(self.config), "--single-process"], stdout=out, stderr=out
            )
        wait_until(self.ready, timeout=30, message=f"{name} to be ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            body = httpx.get(f"{self.url}/readyz", timeout=2).json()
        except httpx.HTTPError:
            return False
        return bool(body["ready"]) and body["services"]["dispatcher"]["state"] == "running"

    def dispatcher(self) -> dict[str, Any]:
        status: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=5).json()["services"]["dispatcher"]
        return status

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in complete_lines(self.log) if line.startswith("{")]


@contextmanager
def serving(tmp_path: Path, name: str, store: StoreConfig, record: Path) -> Iterator[Serving]:
    server = Serving(tmp_path, name, store, record)
    try:
        yield server
    finally:
        server.process.send_signal(signal.SIGCONT)
        server.process.terminate()
        server.process.wait(timeout=30)


def test_two_processes_share_the_work_and_a_paused_one_is_fenced_when_its_lease_ran_out(
    tmp_path: Path, store_url: str, postgres_database: str
) -> None:
    store = StoreConfig(url=store_url)
    record = tmp_path / "runs.jsonl"
    with ExitStack() as stack, serving(tmp_path, "a", store, record) as a, httpx.Client() as http:
        first = new_event(resourceinstance="paused-instance")
        assert http.post(webhook(a.url), json=first).status_code == 200
        wait_until(lambda: a.dispatcher()["running"] == 1, message="a to run the event")
        os.kill(a.process.pid, signal.SIGSTOP)  # paused mid-run, past its 1 s lease while b starts
        b = stack.enter_context(serving(tmp_path, "b", store, record))
        [row] = wait_until(lambda: rows(store, "SELECT * FROM inbox WHERE status = 'done'"), timeout=15,
                           message="b to take the event over and finish it")  # fmt: skip
        assert row["attempts"] == 2
        os.kill(a.process.pid, signal.SIGCONT)
        wait_until(lambda: any("lease" in line["msg"] or "taken over" in line["msg"] for line in a.lines()),
                   message="a to learn that its claim is gone")  # fmt: skip
        others = [new_event(resourceinstance=f"instance-{n % 3}") for n in range(6)]
        for n, event in enumerate(others):
            assert http.post(webhook((a, b)[n % 2].url), json=event).status_code == 200
        wait_until(lambda: len(rows(store, "SELECT id FROM inbox WHERE status = 'done'")) == 7, timeout=30,
                   message="every event done")  # fmt: skip
        done = {"a": a.dispatcher()["done"], "b": b.dispatcher()["done"]}
        copying = run_cli("store", "copy", "--from", store_url, "--to", new_schema(postgres_database))
    assert copying.returncode == 1 and "a receiver is serving from the store" in copying.stderr
    assert done["a"] + done["b"] == 7, "the paused run's outcome was not recorded: each event counted once"
    assert done["b"] >= 1
    runs = recorded(record)
    assert sorted(r["id"] for r in runs if r["id"] != first["id"]) == sorted(e["id"] for e in others)
    attempts = rows(store, "SELECT attempts FROM inbox WHERE id <> :id", {"id": first["id"]})
    assert [row["attempts"] for row in attempts] == [1] * len(others)
    assert {row["status"] for row in rows(store, "SELECT status FROM inbox")} == {"done"}
