"""Attachment names a sender chooses, met by a recipient's receiver over real HTTP against the simulator: names over
the filesystem's 255 bytes (200 CJK characters, a long name of `æøå`) failed with `File name too long` at every
attempt until the event was dead and the correspondence never stored. Names are capped by bytes (room left for the
temporary `.part`), readable (cut on a character boundary, the extension kept), and Windows device names and bidi
overrides made harmless. A stale `.part` of an attachment is overwritten when it is downloaded again, and a `.part`
another process holds is left to it."""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import new_client, upload_form
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import ReceiverServer, ReceiverSetup, register_identity
from tests.dispatch_support import FAST_RETRIES, RECIPIENT, RECIPIENT_ORG, RESOURCE, SENDER_ORG, query, wait_settled
from tests.support import wait_until

BASE = "/correspondence/api/v1/correspondence"
OWNER_SCOPES = ["altinn:serviceowner", "altinn:correspondence.read", "altinn:correspondence.write"]
NAME_MAX = 255

CJK = "文" * 200 + ".pdf"  # 604 bytes
NORDIC = "Søknad om støtte til ærfugl på øya Åsgårdstrand " * 5 + "vedlegg.docx"  # 252 characters, 287 bytes
HOSTILE = {
    CJK: b"cjk",
    NORDIC: b"nordic",
    "CON.txt": b"device",
    "lpt1": b"device without extension",
    "Faktura \u202eFDP.exe": b"bidi",
    "colour\x1b[31m.csv": b"controls",  # (a multipart filename cannot carry a tab or CR: httpx encodes them)
    "brev.pdf": b"plain",
}


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as running:
        yield running


def send(sim: RunningSimulator, files: dict[str, bytes]) -> tuple[str, dict[str, str]]:
    """A correspondence with these attachments, sent through the upload API as its sender: its id, and the id of
    each attachment by its file name."""
    resource_id = RESOURCE.removeprefix("urn:altinn:resource:")
    form = upload_form(resource_id, RECIPIENT, files, title="Vedlegg med rare navn", reference="hostile-names")
    uploads = [("attachments", (name, data, "application/octet-stream")) for name, data in files.items()]
    sim.set_resource_owner(RESOURCE, SENDER_ORG)
    with new_client(sim, SENDER_ORG, OWNER_SCOPES).api() as sender:
        response = sender.post(BASE + "/upload", data=form, files=uploads)
        assert response.status_code == 200, response.text
        correspondence_id: str = response.json()["correspondences"][0]["correspondenceId"]
        details = sender.get(f"{BASE}/{correspondence_id}/details").json()
    return correspondence_id, {a["fileName"]: a["id"] for a in details["content"]["attachments"]}


@contextmanager
def recipient(sim: RunningSimulator, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The recipient's receiver, catching up from the beginning (so a test can act before it runs): its store and
    its attachments folder."""
    identity = register_identity(sim, tmp_path, org=RECIPIENT_ORG, service_owner=None,
                                 scopes=["altinn:events.subscribe", "altinn:correspondence.read"])  # fmt: skip
    files = tmp_path / "files"
    subscription = SubscriptionConfig(RESOURCE, subject=RECIPIENT)
    setup = ReceiverSetup(sim.url, identity, tmp_path / "receiver.db", [subscription],
                          catchup={"start": "beginning", "interval": "1s"}, role="recipient", dispatch=FAST_RETRIES,
                          extra=f'[handlers.download_attachments]\ndir = "{files}"\n')  # fmt: skip
    with ReceiverServer(setup.write(tmp_path / "receiver.toml")) as receiver:
        receiver.wait_started()
        yield setup.store, files


def stored_files(store: Path, correspondence_id: str) -> dict[str, sqlite3.Row]:
    rows = query(store, "SELECT * FROM correspondence_attachments WHERE correspondence_id = ?", correspondence_id)
    return {row["attachment_id"]: row for row in rows}


def test_hostile_names_are_stored_readable_within_the_byte_limit(sim: RunningSimulator, tmp_path: Path) -> None:
    correspondence_id, ids = send(sim, HOSTILE)
    with recipient(sim, tmp_path) as (store, files):
        assert list(wait_settled(store, 1).values()) == ["done"]
    stored = stored_files(store, correspondence_id)
    names = {}
    for name, data in HOSTILE.items():
        row = stored[ids[name]]
        path = Path(row["path"])
        assert path.parent == files / correspondence_id / ids[name]
        assert path.read_bytes() == data and row["size"] == len(data) and row["file_name"] == name
        assert len(path.name.encode()) + len(b"..part") <= NAME_MAX
        names[name] = path.name
    assert names[CJK] == "文" * ((NAME_MAX - len(b"..part") - len(b".pdf")) // 3) + ".pdf"  # whole characters
    nordic = names[NORDIC]
    assert nordic.endswith(".docx") and NORDIC.startswith(nordic.removesuffix(".docx"))
    assert names["CON.txt"] == "_CON.txt" and names["lpt1"] == "_lpt1"
    assert names["Faktura \u202eFDP.exe"] == "Faktura _FDP.exe"
    assert names["colour\x1b[31m.csv"] == "colour_[31m.csv"
    assert names["brev.pdf"] == "brev.pdf"
    assert not list(files.rglob("*.part"))


def test_a_stale_part_file_is_overwritten_and_a_part_held_by_another_process_is_waited_for(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    correspondence_id, ids = send(sim, {"brev.pdf": b"the real letter", "vedlegg.csv": b"a;b\n"})
    files = tmp_path / "files"
    stale = files / correspondence_id / ids["vedlegg.csv"] / ".vedlegg.csv.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left behind by a process that was killed mid-download" * 100)
    held = files / correspondence_id / ids["brev.pdf"] / ".brev.pdf.part"
    held.parent.mkdir(parents=True)
    with held.open("wb") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another replica is downloading this attachment right now
        with recipient(sim, tmp_path) as (store, _):
            retrying = wait_until(
                lambda: query(store, "SELECT last_error FROM inbox WHERE status = 'retrying'"),
                message="the event to wait for the other download",
            )
            assert "another process is downloading" in retrying[0]["last_error"]
            fcntl.flock(other, fcntl.LOCK_UN)
            assert list(wait_settled(store, 1).values()) == ["done"]
    stored = stored_files(store, correspondence_id)
    assert Path(stored[ids["vedlegg.csv"]]["path"]).read_bytes() == b"a;b\n"
    assert Path(stored[ids["brev.pdf"]]["path"]).read_bytes() == b"the real letter"
    assert not stale.exists() and not held.exists()
