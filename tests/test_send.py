"""`altinn-receiver send`: a correspondence initialised through the simulator's Correspondence API, and --follow
watching its events arrive through a running receiver until the recipient has read it, on each store backend (an
SQLite file, a PostgreSQL schema)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from altinn_sim import SimSettings, running_simulator
from altinn_sim.runner import RunningSimulator
from altinn_sim.testing import new_client
from receiver.config import StoreConfig
from receiver.onboarding.agency import SCOPES
from receiver.onboarding.sending import CONFIDENTIAL_ACCESS_PACKAGE
from receiver.onboarding.templates import STORE_FILE
from receiver.server_thread import free_port
from tests.onboarding_support import RECIPIENT_ORG, SENDER_ORG, Agency, cli, onboard, serving
from tests.store_backends import store_toml
from tests.support import REPO, wait_until

RESOURCE = "send-test-resource"


def send(agency: Agency, *args: str) -> subprocess.CompletedProcess[str]:
    return agency.run("send", *args)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=100.0, seed_correspondences=0)) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def owner(sim: RunningSimulator, tmp_path_factory: pytest.TempPathFactory) -> Agency:
    return onboard(sim, tmp_path_factory.mktemp("owner"), "send-owner", RESOURCE, SCOPES["service-owner"])


def with_store(owner: Agency, directory: Path, store: str) -> Agency:
    """The owner's config, client, key and webhook (so the same subscription at Altinn) in `directory`, its `[store]`
    naming `store` instead (`path = ...` or `url = ...`)."""
    shutil.copytree(owner.directory, directory)
    agency = Agency(directory, owner.port)
    text = agency.config.read_text()
    assert f'path = "{STORE_FILE}"' in text
    agency.config.write_text(text.replace(f'path = "{STORE_FILE}"', store))
    return agency


@pytest.fixture
def agency(owner: Agency, store_config: StoreConfig, tmp_path: Path) -> Agency:
    """The owner, its store a new one on each backend: an SQLite file not there yet, or an empty PostgreSQL schema."""
    return with_store(owner, tmp_path / "agency", store_toml(store_config).removeprefix("[store]\n"))


@pytest.fixture
def receiver(agency: Agency, sim: RunningSimulator) -> Iterator[Agency]:
    """`serve` with the agency's config: it subscribes to the resource and stores what the simulator pushes."""
    with serving(agency, sim, RESOURCE) as running:
        yield running


def following(agency: Agency, *args: str) -> subprocess.Popen[str]:
    """`send --follow` with the agency's config, running."""
    return subprocess.Popen(
        cli("send", "--config", str(agency.config), "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, *args,
            "--follow"),
        env={**os.environ, **agency.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


class Lines:
    """The lines of a subprocess's output stream, collected by a thread."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.stream = stream
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.stream:
            self.queue.put(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        def arrived() -> str | None:
            while not self.queue.empty():
                self.seen.append(self.queue.get())
            return next((line for line in self.seen if text in line), None)

        return wait_until(arrived, timeout=timeout, interval=0.05, message=f"{text!r} in {self.seen}")


def test_follow_shows_the_correspondence_published_and_then_read_by_the_recipient(
    receiver: Agency, sim: RunningSimulator
) -> None:
    process = following(receiver, "--title", "Loop test", "--body", "Sent by the send --follow test",
                        "--timeout", "60s", "--json")  # fmt: skip
    lines = Lines(process.stdout)
    try:
        first = json.loads(lines.wait_for("correspondenceId"))
        correspondence_id = first["correspondenceId"]
        assert first["recipient"] == f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"
        published = json.loads(lines.wait_for("correspondencepublished"))
        assert published["correspondenceId"] == correspondence_id
        assert process.poll() is None, "not read yet: --follow must still be waiting"
        sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()
        read = json.loads(lines.wait_for("correspondencereceiverread"))
        assert read["event"] == "no.altinn.correspondence.correspondencereceiverread"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    events = [json.loads(line).get("event") for line in lines.seen if '"event"' in line]
    assert events.index("no.altinn.correspondence.correspondencepublished") < events.index(
        "no.altinn.correspondence.correspondencereceiverread"
    )


def test_attachments_go_through_upload_and_arrive_intact(owner: Agency, sim: RunningSimulator, tmp_path: Path) -> None:
    """Read back as the recipient: Altinn shows the sender no content once published (contract §7.3)."""
    report = tmp_path / "vedtak.pdf"
    report.write_bytes(b"%PDF-1.4 not really a pdf\n" * 100)
    result = send(owner, "--resource", f"urn:altinn:resource:{RESOURCE}", "--recipient", RECIPIENT_ORG,
                  "--title", "With a file", "--attach", str(report))  # fmt: skip
    assert result.returncode == 0, result.stderr
    correspondence_id = result.stdout.strip()

    with new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read"]).api() as recipient:
        details = recipient.get(f"/correspondence/api/v1/correspondence/{correspondence_id}/details").json()
        [attachment] = details["content"]["attachments"]
        download = recipient.get(
            f"/correspondence/api/v1/correspondence/{correspondence_id}/attachment/{attachment['id']}/download"
        )
    assert details["content"]["messageTitle"] == "With a file"
    assert attachment["fileName"] == "vedtak.pdf"
    assert download.status_code == 200 and download.content == report.read_bytes()


def test_follow_gives_up_at_the_timeout_when_no_receiver_stores_events(agency: Agency) -> None:
    result = send(agency, "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, "--title", "Nobody listens",
                  "--follow", "--timeout", "1s")  # fmt: skip
    assert result.returncode == 1
    assert "did not reach Read" in result.stderr
    assert result.stderr.count("waiting for") == 1, "said once"


def test_follow_waits_for_the_store_that_serve_creates_and_then_follows_it(
    agency: Agency, store_config: StoreConfig, sim: RunningSimulator
) -> None:
    """Before `serve` has started there is no store to read: no SQLite file yet, no tables in the PostgreSQL schema.
    --follow says what it waits for and keeps polling; once `serve` has made the store it follows as usual."""
    process = following(agency, "--title", "Sent before serve", "--timeout", "60s", "--json")
    stdout, stderr = Lines(process.stdout), Lines(process.stderr)
    try:
        waiting = stderr.wait_for("waiting for")
        assert "is `altinn-receiver serve` running with this config?" in waiting
        awaited = "the receiver's tables in postgresql://" if store_config.url else f"waiting for {store_config.path}:"
        assert awaited in waiting
        correspondence_id = json.loads(stdout.wait_for("correspondenceId"))["correspondenceId"]
        assert process.poll() is None, "still waiting for the store"
        with serving(agency, sim, RESOURCE):
            stdout.wait_for("correspondencepublished")
            sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()
            assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert stderr.wait_for(f"{correspondence_id}: Read")


def test_follow_on_an_unreachable_postgresql_says_which_host_and_not_the_password(
    owner: Agency, tmp_path: Path
) -> None:
    """The correspondence is sent; following it then fails with one line naming the store, exit status 1."""
    url = f"postgresql://receiver:hemmelig-passord@127.0.0.1:{free_port()}/receiver"
    agency = with_store(owner, tmp_path / "agency", f"url = {json.dumps(url)}")
    result = send(agency, "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, "--title", "Nowhere to follow",
                  "--follow", "--timeout", "30s")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert len(result.stdout.split()) == 1, "sent: its id printed"
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "postgresql://receiver@127.0.0.1:" in error and "cannot reach PostgreSQL" in error
    assert "Traceback" not in result.stderr
    assert "hemmelig-passord" not in result.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--recipient", "12345"), "--recipient"),
        (("--resource", "Not-Lower"), "--resource"),
        (("--title", " "), "--title"),
        (("--timeout", "soon"), "--timeout"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(owner: Agency, args: tuple[str, ...], flag: str) -> None:
    defaults = {"--resource": RESOURCE, "--recipient": RECIPIENT_ORG, "--title": "t"}
    defaults.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = send(owner, *[item for pair in defaults.items() for item in pair])
    assert result.returncode == 2
    assert flag in result.stderr


def test_a_client_without_the_write_scope_is_refused_with_the_reason(sim: RunningSimulator, tmp_path: Path) -> None:
    reader = onboard(sim, tmp_path, "send-reader", RESOURCE, ("altinn:correspondence.read", "altinn:events.subscribe"))
    config = reader.config.read_text()
    assert '"altinn:correspondence.write"' in config
    result = send(reader, "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, "--title", "Refused")
    assert result.returncode == 1
    assert "error: sending failed" in result.stderr
    assert "eyJ" not in result.stderr, "no token in the output"


def test_altinn_s_reason_for_a_refusal_is_shown_not_just_its_status_text(owner: Agency) -> None:
    result = send(owner, "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, "--title", "Too long",
                  "--body", "x" * 30_001)  # fmt: skip
    assert result.returncode == 1
    assert "Bad Request: Message body cannot exceed 30000 characters (errorCode 1022)" in result.stderr


def test_confidentiality_refusals_say_which_access_package_the_resource_asks_for(
    owner: Agency, sim: RunningSimulator
) -> None:
    confidential = "send-confidential-resource"
    sim.set_resource_owner(confidential, SENDER_ORG, confidential=True)
    unmarked = send(owner, "--resource", confidential, "--recipient", RECIPIENT_ORG, "--title", "Taushetsbelagt")
    marked_elsewhere = send(owner, "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, "--title", "Åpen",
                            "--confidential")  # fmt: skip
    marked = send(owner, "--resource", confidential, "--recipient", RECIPIENT_ORG, "--title", "Taushetsbelagt",
                  "--confidential")  # fmt: skip
    assert unmarked.returncode == 1
    assert "(errorCode 1060)" in unmarked.stderr
    assert f"{confidential} is a confidential resource" in unmarked.stderr
    assert CONFIDENTIAL_ACCESS_PACKAGE in unmarked.stderr and "send it again with --confidential" in unmarked.stderr
    assert marked_elsewhere.returncode == 1
    assert "(errorCode 1061)" in marked_elsewhere.stderr
    assert f"{RESOURCE} is not a confidential resource" in marked_elsewhere.stderr
    assert CONFIDENTIAL_ACCESS_PACKAGE in marked_elsewhere.stderr
    assert marked.returncode == 0, marked.stderr


def test_a_recipient_config_cannot_send(sim: RunningSimulator, tmp_path: Path) -> None:
    recipient = onboard(sim, tmp_path, "send-recipient", RESOURCE, SCOPES["recipient"], "--role", "recipient")
    result = send(recipient, "--resource", RESOURCE, "--recipient", RECIPIENT_ORG, "--title", "t")
    assert result.returncode == 2
    assert "maskinporten.scopes" in result.stderr and "altinn:correspondence.write" in result.stderr


def test_with_confirmation_needed_follow_waits_past_read_until_confirmed(
    receiver: Agency, sim: RunningSimulator
) -> None:
    process = following(receiver, "--title", "Please confirm", "--confirmation-needed", "--timeout", "60s", "--json")
    lines = Lines(process.stdout)
    try:
        correspondence_id = json.loads(lines.wait_for("correspondenceId"))["correspondenceId"]
        lines.wait_for("correspondencepublished")
        sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()
        lines.wait_for("correspondencereceiverread")
        assert process.poll() is None, "read is not the end when a confirmation is needed"
        sim.admin.post(f"/correspondences/{correspondence_id}/confirm").raise_for_status()
        lines.wait_for("correspondencereceiverconfirmed")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_ctrl_c_stops_following_with_exit_130(receiver: Agency) -> None:
    process = following(receiver, "--title", "Interrupted")
    assert process.stderr is not None
    try:
        stderr = process.stderr
        wait_until(lambda: "following" in stderr.readline(), timeout=30, message="--follow to start")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert "stopped following" in process.stderr.read()
