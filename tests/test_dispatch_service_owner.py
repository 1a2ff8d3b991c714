"""The service owner's receiver with its default pipelines, over real HTTP against the simulator: what it stores
when Altinn leaves the content out (contract §7.3), the status as Altinn ranks it (§7.4), and `attachmentexpired`
(§7.2), which names an attachment and updates the rows that have it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import new_client
from receiver.onboarding.follow import StoreWatch, final_outcome
from tests.dispatch_support import (
    RECIPIENT,
    RECIPIENT_ORG,
    RECIPIENT_SCOPES,
    RESOURCE,
    SENDER_ORG,
    query,
    service_owner_setup,
    subscribed_receiver,
    wait_settled,
)

BASE = "/correspondence/api/v1/correspondence"
SENDER_SCOPES = ["altinn:correspondence.read", "altinn:correspondence.write"]
ATTACHMENT_EXPIRED = "no.altinn.correspondence.attachmentexpired"
PUBLISHED_EVENTS = 4
"""initialized, notificationcreated, attachmentpublished (one attachment), published: all the owner's to see."""


def details_as_sender(sim: RunningSimulator, correspondence_id: str) -> dict[str, object]:
    """What the sender sees without the service-owner bypass (its reads record nothing)."""
    with new_client(sim, SENDER_ORG, SENDER_SCOPES).api() as sender:
        details: dict[str, object] = sender.get(f"{BASE}/{correspondence_id}/details").json()
    return details


def test_an_answer_without_content_keeps_the_stored_title_and_the_status_is_altinns_highest(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = service_owner_setup(sim, tmp_path)
        with subscribed_receiver(setup, tmp_path):
            correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title="Vedtak", attachments=1)
            assert set(wait_settled(setup.store, PUBLISHED_EVENTS).values()) == {"done"}
            [before] = query(setup.store, "SELECT * FROM correspondences")
            [attachment] = query(setup.store, "SELECT * FROM correspondence_attachments")

            # The resource changes hands: the receiver's token keeps sender access but loses the bypass, so Altinn
            # now answers it with the empty stand-in content.
            sim.set_resource_owner(RESOURCE, "999999999")
            assert details_as_sender(sim, correspondence_id)["content"] == {
                "language": "no", "messageTitle": "", "messageSummary": "", "messageBody": "", "attachments": [],
            }  # fmt: skip
            with new_client(sim, RECIPIENT_ORG, list(RECIPIENT_SCOPES)).api() as recipient:
                url = f"{BASE}/{correspondence_id}/attachment/{attachment['attachment_id']}/download"
                recipient.get(url).raise_for_status()
            sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()  # receiverread, to us
            assert set(wait_settled(setup.store, PUBLISHED_EVENTS + 1).values()) == {"done"}
        [after] = query(setup.store, "SELECT * FROM correspondences")
        [attachment_after] = query(setup.store, "SELECT * FROM correspondence_attachments")
    assert (before["message_title"], before["status"], before["recipient"]) == ("Vedtak", "Published", RECIPIENT)
    assert json.loads(before["details"])["content"]["messageTitle"] == "Vedtak"
    assert after["status"] == "AttachmentsDownloaded", "Altinn ranks a download above Read"
    details = json.loads(after["details"])
    assert {"Read", "AttachmentsDownloaded"} <= {h["status"] for h in details["statusHistory"]}
    assert (after["message_title"], after["recipient"]) == ("Vedtak", RECIPIENT)
    assert details["content"] == json.loads(before["details"])["content"], "the stored content is kept"
    assert after["updated_at"] > before["updated_at"]
    assert dict(attachment_after) == dict(attachment), "no attachments in the answer: the row is left alone"
    # `send --follow` reads the same store: the status hides Read, the history shows it.
    watch = StoreWatch(setup.store, correspondence_id)
    [status] = [s for s in watch.poll() if s.kind == "status"]
    watch.close()
    assert (status.name, status.hidden) == ("AttachmentsDownloaded", ("Read",))
    assert final_outcome(status.outcomes, confirmation_needed=False) == "Read"
    assert final_outcome(status.outcomes, confirmation_needed=True) is None


def test_attachment_expired_updates_the_rows_that_have_it_and_creates_none(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = service_owner_setup(sim, tmp_path)
        with subscribed_receiver(setup, tmp_path):
            correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, attachments=2)
            assert set(wait_settled(setup.store, PUBLISHED_EVENTS + 1).values()) == {"done"}
            before = {r["attachment_id"]: r for r in query(setup.store, "SELECT * FROM correspondence_attachments")}
            expiring, staying = sorted(before)
            expired = sim.admin.post(f"/correspondences/{correspondence_id}/attachments/{expiring}/expire")
            assert expired.json()["changed"] is True
            unknown = str(uuid.uuid4())
            sim.publish_event(
                {"specversion": "1.0", "id": str(uuid.uuid4()), "type": ATTACHMENT_EXPIRED,
                 "source": f"{sim.url}/correspondence/api/v1/attachment", "resource": RESOURCE,
                 "resourceinstance": unknown, "subject": f"urn:altinn:organization:identifier-no:{SENDER_ORG}",
                 "time": "2026-01-05T10:00:00Z"}
            )  # fmt: skip
            assert set(wait_settled(setup.store, PUBLISHED_EVENTS + 3).values()) == {"done"}
    after = {r["attachment_id"]: r for r in query(setup.store, "SELECT * FROM correspondence_attachments")}
    assert set(after) == {expiring, staying}, "no row for an attachment the store did not have"
    assert {a: r["status"] for a, r in before.items()} == {expiring: "Published", staying: "Published"}
    assert (after[expiring]["status"], after[expiring]["correspondence_id"]) == ("Expired", correspondence_id)
    assert after[expiring]["updated_at"] > before[expiring]["updated_at"]
    assert dict(after[staying]) == dict(before[staying])
    recorded = query(
        setup.store, "SELECT resourceinstance, correspondence_id FROM correspondence_events WHERE type = ?",
        ATTACHMENT_EXPIRED,
    )  # fmt: skip
    assert sorted(tuple(r) for r in recorded) == sorted([(expiring, ""), (unknown, "")])
    assert query(setup.store, "SELECT * FROM correspondences WHERE correspondence_id = ?", unknown) == []
