"""The service owner's receiver with its default pipelines, over real HTTP against the simulator: what it stores
when Altinn leaves the content out (contract §7.3), the status as Altinn ranks it (§7.4), and `attachmentexpired`
(§7.2), which names an attachment and updates the rows that have it.

The service owner reads as the sender, and the simulator publishes at once, so its own fetches never carry
content. What a fetch with content stored first comes from a recipient's receiver run before it on the same store
file (as a fetch before publishing would leave it at Altinn)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import new_client
from receiver.config import StoreConfig
from receiver.onboarding.follow import Sighting, StoreWatch, final_outcome
from receiver.store.backends import open_backend
from tests.dispatch_support import (
    RECIPIENT,
    RECIPIENT_ORG,
    RESOURCE,
    SENDER_ORG,
    query,
    recipient_setup,
    service_owner_setup,
    subscribed_receiver,
    wait_settled,
)

BASE = "/correspondence/api/v1/correspondence"
ATTACHMENT_EXPIRED = "no.altinn.correspondence.attachmentexpired"
NO_CONTENT = {"language": "no", "messageTitle": "", "messageSummary": "", "messageBody": "", "attachments": []}


def stored_by_the_recipient(sim: RunningSimulator, tmp_path: Path, title: str, attachments: int) -> tuple[Path, str]:
    """A correspondence sent, fetched, downloaded and stored by the recipient's receiver, which then stops; its
    store file and the correspondence id."""
    files = tmp_path / "files"
    setup = recipient_setup(sim, tmp_path / "recipient", extra=f'[handlers.download_attachments]\ndir = "{files}"\n')
    with subscribed_receiver(setup, tmp_path / "recipient"):
        correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title=title, attachments=attachments)
        assert list(wait_settled(setup.store, 1).values()) == ["done"]
    return setup.store, correspondence_id


def attachment_rows(store: Path) -> dict[str, sqlite3.Row]:
    return {row["attachment_id"]: row for row in query(store, "SELECT * FROM correspondence_attachments")}


def polled_once(store: Path, correspondence_id: str) -> list[Sighting]:
    """What `send --follow` sees of the correspondence in the store on its first look."""
    watch = StoreWatch(open_backend(StoreConfig(path=store)), correspondence_id)

    async def poll() -> list[Sighting]:
        try:
            return await watch.poll()
        finally:
            await watch.close()

    return asyncio.run(poll())


def test_an_answer_without_content_keeps_the_stored_title_and_the_status_is_altinns_highest(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        store, correspondence_id = stored_by_the_recipient(sim, tmp_path, "Vedtak", attachments=1)
        [before] = query(store, "SELECT * FROM correspondences")
        attachments_before = attachment_rows(store)
        setup = service_owner_setup(sim, tmp_path / "owner", store=store)
        with subscribed_receiver(setup, tmp_path / "owner"):
            with new_client(sim, SENDER_ORG, ["altinn:correspondence.write"]).api() as sender:
                assert sender.get(f"{BASE}/{correspondence_id}/details").json()["content"] == NO_CONTENT
            sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()  # receiverread, to us
            assert set(wait_settled(store, 2).values()) == {"done"}
        [after] = query(store, "SELECT * FROM correspondences")
    assert (before["message_title"], before["status"]) == ("Vedtak", "Published")
    assert after["status"] == "AttachmentsDownloaded", "the recipient's download ranks above its Read"
    details = json.loads(after["details"])
    assert {"Read", "AttachmentsDownloaded"} <= {h["status"] for h in details["statusHistory"]}
    assert (after["message_title"], after["recipient"]) == ("Vedtak", RECIPIENT)
    assert details["content"] == json.loads(before["details"])["content"], "the stored content is kept"
    assert details["content"]["messageTitle"] == "Vedtak"
    assert after["updated_at"] > before["updated_at"]
    assert attachment_rows(store) == attachments_before, "no attachments in the answer: the rows are left alone"
    # `send --follow` reads the same store: the status hides Read, the history shows it.
    [status] = [s for s in polled_once(store, correspondence_id) if s.kind == "status"]
    assert (status.name, status.hidden) == ("AttachmentsDownloaded", ("Read",))
    assert final_outcome(status.outcomes, confirmation_needed=False) == "Read"
    assert final_outcome(status.outcomes, confirmation_needed=True) is None


def test_a_service_owners_answer_without_content_is_stored_without_title_or_attachments(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = service_owner_setup(sim, tmp_path)
        with subscribed_receiver(setup, tmp_path):
            correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title="Vedtak", attachments=1)
            # initialized, notificationcreated, attachmentpublished, published: all the owner's to see
            assert set(wait_settled(setup.store, 4).values()) == {"done"}
    [row] = query(setup.store, "SELECT * FROM correspondences")
    assert (row["correspondence_id"], row["status"], row["recipient"]) == (correspondence_id, "Published", RECIPIENT)
    assert row["message_title"] == ""
    assert json.loads(row["details"])["content"] == NO_CONTENT
    assert query(setup.store, "SELECT * FROM correspondence_attachments") == []


def test_attachment_expired_updates_the_rows_that_have_it_and_creates_none(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        store, correspondence_id = stored_by_the_recipient(sim, tmp_path, "To vedlegg", attachments=2)
        before = attachment_rows(store)
        expiring, staying = sorted(before)
        setup = service_owner_setup(sim, tmp_path / "owner", store=store)
        with subscribed_receiver(setup, tmp_path / "owner"):
            expired = sim.admin.post(f"/correspondences/{correspondence_id}/attachments/{expiring}/expire")
            assert expired.json()["changed"] is True
            unknown = str(uuid.uuid4())
            sim.publish_event(
                {"specversion": "1.0", "id": str(uuid.uuid4()), "type": ATTACHMENT_EXPIRED,
                 "source": f"{sim.url}/correspondence/api/v1/attachment", "resource": RESOURCE,
                 "resourceinstance": unknown, "subject": f"urn:altinn:organization:identifier-no:{SENDER_ORG}",
                 "time": "2026-01-05T10:00:00Z"}
            )  # fmt: skip
            assert set(wait_settled(store, 3).values()) == {"done"}
    after = attachment_rows(store)
    assert set(after) == {expiring, staying}, "no row for an attachment the store did not have"
    assert {a: r["status"] for a, r in before.items()} == {expiring: "Published", staying: "Published"}
    assert (after[expiring]["status"], after[expiring]["correspondence_id"]) == ("Expired", correspondence_id)
    assert after[expiring]["path"] == before[expiring]["path"] != "", "the file downloaded before stays"
    assert after[expiring]["updated_at"] > before[expiring]["updated_at"]
    assert dict(after[staying]) == dict(before[staying])
    recorded = query(
        store, "SELECT resourceinstance, correspondence_id FROM correspondence_events WHERE type = ?",
        ATTACHMENT_EXPIRED,
    )  # fmt: skip
    assert sorted(tuple(r) for r in recorded) == sorted([(expiring, ""), (unknown, "")])
