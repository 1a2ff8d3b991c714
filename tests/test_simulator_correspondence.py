"""The Correspondence API: seeded data, status transitions, errors, sending (JSON and multipart) and its events,
with every response body checked against Altinn's published OpenAPI document."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.seed import SEED_RECIPIENTS, SEED_RESOURCE, SEED_SENDER_ORG
from altinn_sim.testing import TestClient, Webhook, new_client, upload_form
from tests.correspondence_support import SPEC_PATH, SPEC_SHA256, check, load_spec
from tests.support import wait_until

BASE = "/correspondence/api/v1/correspondence"
RECIPIENT_ORG = SEED_RECIPIENTS[0]
RECIPIENT = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"


def test_the_spec_is_altinns_file_byte_for_byte() -> None:
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == SPEC_SHA256


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=6)) as running:
        yield running


@pytest.fixture(scope="module")
def recipient(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read"]).api() as api:
        yield api


@pytest.fixture(scope="module")
def owner(sim: RunningSimulator) -> TestClient:
    scopes = ["altinn:serviceowner", "altinn:correspondence.write", "altinn:events.subscribe"]
    return new_client(sim, SEED_SENDER_ORG, scopes, service_owner="digdir")


@pytest.fixture(scope="module")
def sender(owner: TestClient) -> Iterator[httpx.Client]:
    with owner.api() as api:
        yield api


def send_body(**overrides: Any) -> dict[str, Any]:
    correspondence = {
        "resourceId": SEED_RESOURCE,
        "sendersReference": "sak-42",
        "content": {"language": "nb", "messageTitle": "Vedtak", "messageSummary": "Kort", "messageBody": "# Hei"},
        "notification": {"notificationTemplate": "GenericAltinnMessage"},
    }
    correspondence.update(overrides.pop("correspondence", {}))
    return {"correspondence": correspondence, "recipients": [RECIPIENT], **overrides}


def test_seeded_correspondences_validate_and_their_attachments_match_checksums(
    spec: dict[str, Any], recipient: httpx.Client
) -> None:
    listing = recipient.get(BASE, params={"resourceId": SEED_RESOURCE, "role": "Recipient"})
    assert listing.status_code == 200
    check(spec, "CorrespondencesExt", listing.json())
    ids = listing.json()["ids"]
    assert len(ids) == 2  # seeds 0 and 3 of 6 go to the first recipient
    downloads = 0
    for correspondence_id in ids:
        overview = recipient.get(f"{BASE}/{correspondence_id}").json()
        check(spec, "CorrespondenceOverviewExt", overview)
        details = recipient.get(f"{BASE}/{correspondence_id}/details").json()
        check(spec, "CorrespondenceDetailsExt", details)
        assert details["content"]["messageTitle"] and details["content"]["language"] == "nb"
        for attachment in details["content"]["attachments"]:
            response = recipient.get(f"{BASE}/{correspondence_id}/attachment/{attachment['id']}/download")
            assert response.status_code == 200
            assert hashlib.md5(response.content).hexdigest() == attachment["checksum"]
            assert attachment["checksum"] == attachment["checksum"].lower()
            assert attachment["fileName"] in response.headers["content-disposition"]
            downloads += 1
    assert downloads == 3  # seed 3 has three attachments
    pdf = recipient.get(f"{BASE}/{ids[1]}/details").json()["content"]["attachments"][0]
    assert recipient.get(f"{BASE}/{ids[1]}/attachment/{pdf['id']}/download").content.startswith(b"%PDF-1.4")


def test_status_transitions_errors_and_events_to_the_sender(
    spec: dict[str, Any], sim: RunningSimulator, owner: TestClient, recipient: httpx.Client
) -> None:
    with Webhook() as hook, owner.api() as api:
        subscription = api.post(
            "/events/api/v1/subscriptions",
            json={"endPoint": hook.url + "/so", "resourceFilter": f"urn:altinn:resource:{SEED_RESOURCE}"},
        ).json()
        wait_until(lambda: api.get(f"/events/api/v1/subscriptions/{subscription['id']}").json()["validated"])
        correspondence_id = sim.send_correspondence(
            SEED_RESOURCE, RECIPIENT_ORG, title="Til bekreftelse", attachments=1
        )
        early = recipient.post(f"{BASE}/{correspondence_id}/markasread")
        assert (early.status_code, early.json()["errorCode"]) == (400, 1024)
        check(spec, "ProblemDetails", early.json())
        assert recipient.post(f"{BASE}/{correspondence_id}/confirm").json()["errorCode"] == 1025
        # Fetched is recorded, but never the top-level status (correspondence contract §7.4).
        assert recipient.get(f"{BASE}/{correspondence_id}").json()["status"] == "Published"
        assert recipient.get(f"{BASE}/{correspondence_id}").json()["status"] == "Published"
        read = recipient.post(f"{BASE}/{correspondence_id}/markasread")
        assert read.status_code == 200 and read.json() == correspondence_id
        assert recipient.post(f"{BASE}/{correspondence_id}/markasread").json()["errorCode"] == 1040
        assert recipient.post(f"{BASE}/{correspondence_id}/confirm").status_code == 200
        # Confirmed is recorded a few (scaled) seconds later (§7.14); only then is a second confirm refused.
        details = wait_until(
            lambda: (d := recipient.get(f"{BASE}/{correspondence_id}/details").json())["status"] == "Confirmed" and d,
            message="the confirmation to be applied",
        )
        check(spec, "CorrespondenceDetailsExt", details)
        assert recipient.post(f"{BASE}/{correspondence_id}/confirm").json()["errorCode"] == 1041
        assert [h["status"] for h in details["statusHistory"]][:3] == ["Initialized", "ReadyForPublish", "Published"]
        sender_subject = f"urn:altinn:organization:identifier-no:{SEED_SENDER_ORG}"
        for kind in ("correspondencereceiverread", "correspondencereceiverconfirmed", "correspondenceinitialized"):
            [pushed] = wait_until(partial(hook.of_type, f"no.altinn.correspondence.{kind}"), message=kind)
            assert json.loads(pushed.body)["subject"] == sender_subject
            assert json.loads(pushed.body)["resourceinstance"] == correspondence_id


def test_unknown_correspondences_are_not_found_and_foreign_ones_unauthorized(
    sim: RunningSimulator, recipient: httpx.Client
) -> None:
    missing = recipient.get(f"{BASE}/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, 1001)
    foreign = sim.send_correspondence(SEED_RESOURCE, SEED_RECIPIENTS[1])
    assert recipient.get(f"{BASE}/{foreign}").json()["errorCode"] == 4001
    assert recipient.post(f"{BASE}/{foreign}/markasread").json()["errorCode"] == 4001


def test_list_requires_resource_and_role(recipient: httpx.Client) -> None:
    response = recipient.get(BASE, params={"resourceId": SEED_RESOURCE})
    assert response.status_code == 400 and "role" in response.json()["errors"]


def test_sending_publishes_initialized_notification_and_published_events(
    spec: dict[str, Any], sim: RunningSimulator, sender: httpx.Client, recipient: httpx.Client
) -> None:
    key = str(uuid.uuid4())
    response = sender.post(BASE, json=send_body(idempotentKey=key))
    assert response.status_code == 200, response.text
    check(spec, "InitializeCorrespondencesResponseExt", response.json())
    [created] = response.json()["correspondences"]
    events = [e for e in sim.state_snapshot()["events"] if e["resource"] == f"urn:altinn:resource:{SEED_RESOURCE}"]
    by_type = {
        e["type"].rsplit(".", 1)[1]: e for e in events if e.get("resourceinstance") == created["correspondenceId"]
    }
    assert by_type["correspondenceinitialized"]["subject"].endswith(SEED_SENDER_ORG)
    assert by_type["correspondencepublished"]["subject"] == RECIPIENT
    assert by_type["correspondencepublished"]["alternativesubject"] == f"/organisation/{RECIPIENT_ORG}"
    [order] = created["notifications"]
    notification = next(e for e in events if e.get("resourceinstance") == order["orderId"])
    assert notification["type"] == "no.altinn.correspondence.notificationcreated"
    assert notification["source"].endswith("/correspondence/api/v1/notification")
    assert recipient.get(f"{BASE}/{created['correspondenceId']}").json()["content"]["messageBody"] == "# Hei"
    again = sender.post(BASE, json=send_body(idempotentKey=key))
    assert (again.status_code, again.json()["errorCode"]) == (409, 1034)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (send_body(correspondence={"content": {"language": "sv", "messageTitle": "T", "messageBody": "B"}}), 1023),
        (send_body(correspondence={"content": {"language": "nb", "messageTitle": "", "messageBody": "B"}}), 1020),
        (send_body(correspondence={"content": {"language": "nb", "messageTitle": "T", "messageBody": "B" * 30001}}),
         1022),
        (send_body(correspondence={"isConfirmationNeeded": True}), 1016),
        (send_body(recipients=[RECIPIENT, RECIPIENT]), 1006),
    ],
    ids=["language", "empty-title", "long-body", "confirm-without-due", "duplicate-recipients"],
)  # fmt: skip
def test_send_validation_answers_with_altinns_error_codes(
    sender: httpx.Client, body: dict[str, Any], code: int
) -> None:
    response = sender.post(BASE, json=body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == code


def test_send_model_errors_are_validation_problems(sender: httpx.Client, recipient: httpx.Client) -> None:
    response = sender.post(BASE, json=send_body(correspondence={"resourceId": ""}, recipients=["12345"]))
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"Correspondence.ResourceId", "Recipients"}
    assert recipient.post(BASE, json=send_body()).status_code == 403


def test_upload_stores_the_files_a_recipient_downloads(sender: httpx.Client, recipient: httpx.Client) -> None:
    files = {"brev.pdf": b"%PDF-1.4 brev", "data.csv": "kolonne;verdi\næøå;1\n".encode()}
    form = upload_form(SEED_RESOURCE, RECIPIENT, files)
    uploads = [("attachments", (name, data, "application/octet-stream")) for name, data in files.items()]
    response = sender.post(BASE + "/upload", data=form, files=uploads)
    assert response.status_code == 200, response.text
    correspondence_id = response.json()["correspondences"][0]["correspondenceId"]
    assert len(response.json()["attachmentIds"]) == 2
    attachments = recipient.get(f"{BASE}/{correspondence_id}").json()["content"]["attachments"]
    for attachment in attachments:
        data = recipient.get(f"{BASE}/{correspondence_id}/attachment/{attachment['id']}/download").content
        assert data == files[attachment["fileName"]]
    mismatch = sender.post(BASE + "/upload", data=form, files=uploads[:1])
    assert (mismatch.status_code, mismatch.json()["errorCode"]) == (400, 1005)


def test_recipient_purge_needs_confirmation_when_required(sim: RunningSimulator, recipient: httpx.Client) -> None:
    correspondence_id = sim.send_correspondence(SEED_RESOURCE, RECIPIENT_ORG, is_confirmation_needed=True)
    assert recipient.delete(f"{BASE}/{correspondence_id}/purge").json()["errorCode"] == 1026
    sim.admin.post(f"/correspondences/{correspondence_id}/confirm").raise_for_status()
    wait_until(
        lambda: recipient.get(f"{BASE}/{correspondence_id}").json()["status"] == "Confirmed",
        message="the confirmation to be applied",
    )
    assert recipient.delete(f"{BASE}/{correspondence_id}/purge").status_code == 200
    assert recipient.get(f"{BASE}/{correspondence_id}").status_code == 404
