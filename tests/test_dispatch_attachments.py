"""Attachments Altinn no longer serves (correspondence contract §7.2), met by a recipient's receiver over real HTTP
against the simulator: an expired or purged attachment is not downloaded, yet the correspondence is stored and the
event ends done; its `correspondence_attachments` row says why and `altinn_receiver_attachments_unavailable_total`
counts it. Whether Altinn says so in the details (changed before the fetch) or only when the download is refused
(changed between the fetch and the download: 400 errorCode 2020 or 2019)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import new_client
from tests.dispatch_support import (
    RECIPIENT_ORG,
    RESOURCE,
    SENDER_ORG,
    metric_value,
    query,
    recipient_setup,
    subscribed_receiver,
    wait_settled,
)
from tests.support import wait_until

PUBLISHED = "no.altinn.correspondence.correspondencepublished"
BASE = "/correspondence/api/v1/correspondence"
DOWNLOAD = f"{BASE}/*/attachment/*/download"
UNAVAILABLE = "altinn_receiver_attachments_unavailable_total"
OWNER_SCOPES = ["altinn:serviceowner", "altinn:correspondence.read", "altinn:correspondence.write"]


def attachment_ids(sim: RunningSimulator, correspondence_id: str) -> list[str]:
    """Read by the service owner, whose reads record nothing on the correspondence (unlike the recipient's)."""
    with new_client(sim, SENDER_ORG, OWNER_SCOPES).api() as owner:
        details = owner.get(f"{BASE}/{correspondence_id}/details").json()
    return [attachment["id"] for attachment in details["content"]["attachments"]]


def send_unpushed(sim: RunningSimulator, title: str, attachments: int) -> str:
    """A correspondence whose events Altinn keeps for now (pull API only), so the test acts before the receiver."""
    spec = {"resource_id": RESOURCE, "recipient": RECIPIENT_ORG, "title": title, "attachments": attachments}
    response = sim.admin.post("/correspondences", params={"push": "false"}, json=spec)
    response.raise_for_status()
    ids: list[str] = response.json()["ids"]
    return ids[0]


def push_published(sim: RunningSimulator, correspondence_id: str) -> None:
    """Push the `correspondencepublished` event the simulator made when it published the correspondence."""
    events = sim.state_snapshot()["events"]
    [event] = [e for e in events if e["type"] == PUBLISHED and e["resourceinstance"] == correspondence_id]
    sim.publish_event(event)


def change_attachment(sim: RunningSimulator, correspondence_id: str, attachment_id: str, action: str) -> None:
    response = sim.admin.post(f"/correspondences/{correspondence_id}/attachments/{attachment_id}/{action}")
    response.raise_for_status()
    assert response.json()["changed"] is True


def stored_attachments(store: Path, correspondence_id: str) -> dict[str, sqlite3.Row]:
    rows = query(store, "SELECT * FROM correspondence_attachments WHERE correspondence_id = ?", correspondence_id)
    return {row["attachment_id"]: row for row in rows}


def downloads_answered(sim: RunningSimulator) -> list[Any]:
    return [r["status"] for r in sim.state_snapshot()["requests"] if r["path"].endswith("/download")]


@pytest.mark.parametrize(
    ("action", "status", "reason"), [("expire", "Expired", "expired"), ("purge", "Purged", "purged")]
)
def test_an_attachment_gone_before_the_event_is_processed_is_recorded_and_the_rest_is_stored(
    tmp_path: Path, action: str, status: str, reason: str
) -> None:
    files = tmp_path / "files"
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path, extra=f'[handlers.download_attachments]\ndir = "{files}"\n')
        with subscribed_receiver(setup, tmp_path) as receiver:
            correspondence_id = send_unpushed(sim, "Vedtak med vedlegg", attachments=2)
            gone, kept = attachment_ids(sim, correspondence_id)
            change_attachment(sim, correspondence_id, gone, action)
            push_published(sim, correspondence_id)
            assert list(wait_settled(setup.store, 1).values()) == ["done"]
            counted = {r: metric_value(receiver.url, UNAVAILABLE, reason=r) for r in ("expired", "purged")}
        assert counted == {"expired": 0, "purged": 0, reason: 1}
        assert downloads_answered(sim) == [200], "only the attachment Altinn still serves is asked for"
    [event] = query(setup.store, "SELECT status, attempts, last_error FROM inbox")
    assert (event["status"], event["attempts"], event["last_error"]) == ("done", 1, "")
    [row] = query(setup.store, "SELECT * FROM correspondences")
    assert (row["correspondence_id"], row["message_title"]) == (correspondence_id, "Vedtak med vedlegg")
    stored = stored_attachments(setup.store, correspondence_id)
    assert set(stored) == {gone, kept}
    assert (stored[gone]["status"], stored[gone]["path"], stored[gone]["size"]) == (status, "", None)
    assert stored[gone]["file_name"] and stored[gone]["checksum"]
    on_disk = Path(stored[kept]["path"])
    assert stored[kept]["status"] == "Published"
    assert on_disk.parent == files / correspondence_id / kept and on_disk.stat().st_size == stored[kept]["size"] > 0
    assert not (files / correspondence_id / gone).exists()


def test_an_attachment_that_expires_or_is_purged_while_it_is_being_downloaded_is_recorded_from_altinns_refusal(
    tmp_path: Path,
) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path, extra=f'[handlers.download_attachments]\ndir = "{tmp_path / "f"}"\n')
        with subscribed_receiver(setup, tmp_path) as receiver:
            # Each download waits at the simulator's door (it is logged on arrival) before Altinn answers it.
            delay = {"path": DOWNLOAD, "latency": "2s", "count": 2}
            assert sim.admin.put("/faults", json=[delay]).status_code == 200
            correspondence_id = send_unpushed(sim, "Snart borte", attachments=2)
            expired, purged = attachment_ids(sim, correspondence_id)
            push_published(sim, correspondence_id)
            wait_until(lambda: downloads_answered(sim) == [None], message="the first download to be on its way")
            change_attachment(sim, correspondence_id, expired, "expire")
            change_attachment(sim, correspondence_id, purged, "purge")
            assert list(wait_settled(setup.store, 1).values()) == ["done"]
            counted = {r: metric_value(receiver.url, UNAVAILABLE, reason=r) for r in ("expired", "purged")}
        assert downloads_answered(sim) == [400, 400]
    assert counted == {"expired": 1, "purged": 1}
    found = {a: (r["status"], r["path"]) for a, r in stored_attachments(setup.store, correspondence_id).items()}
    assert found == {expired: ("Expired", ""), purged: ("Purged", "")}
    [row] = query(setup.store, "SELECT status, attempts FROM inbox")
    assert (row["status"], row["attempts"]) == ("done", 1)
