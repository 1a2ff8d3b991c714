"""The simulator against Altinn's own code: one test per fact of the correspondence contract's §7, over real HTTP
with real tokens. Each docstring names the file and lines of Altinn's source that the test encodes; docs/simulator.md
("Fidelity: Correspondence", "Fidelity: Events and authentication") lists them.

Sources: [AC] Altinn/altinn-correspondence at da785168 (paths under `src/Altinn.Correspondence.*` unless marked),
[AE] Altinn/altinn-events at d7232ac8 (2026-08-20), [AA] Altinn/altinn-authentication at ad4f6f36 (2026-07-17).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import TestClient, Webhook, new_client
from receiver.altinn import AltinnClients
from receiver.config import load_config
from receiver.timeutil import iso_after, now_iso, parse_iso
from tests.altinn_support import call, new_key, simulator_with_client, stand_in_config_file
from tests.catchup_support import event
from tests.correspondence_support import check, load_spec
from tests.support import wait_until

BASE = "/correspondence/api/v1/correspondence"
RESOURCE = "conformance-resource"
SENDER_ORG = "991825827"
RECIPIENT_ORG = "312345678"
STRANGER_ORG = "313367002"
SENDER = f"urn:altinn:organization:identifier-no:{SENDER_ORG}"
RECIPIENT = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"
READ = "altinn:correspondence.read"
WRITE = "altinn:correspondence.write"
EVENT = "no.altinn.correspondence."
NO_ACCESS_TEXT = (
    "You must use an Altinn token, DialogToken or log in to IDPorten as someone with access to the resource and "
    "organization in Altinn Authorization"
)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    # 1000x: the 4 s confirmation check takes 4 ms, a due date an hour ahead 3.6 s.
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as running:
        running.set_resource_owner(RESOURCE, SENDER_ORG)
        yield running


def api(sim: RunningSimulator, org: str, scopes: list[str], **options: Any) -> httpx.Client:
    return new_client(sim, org, scopes, **options).api()


@pytest.fixture(scope="module")
def recipient(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with api(sim, RECIPIENT_ORG, [READ]) as client:
        yield client


@pytest.fixture(scope="module")
def sender(sim: RunningSimulator) -> Iterator[httpx.Client]:
    """The sending organisation with the write scope alone: no service-owner bypass."""
    with api(sim, SENDER_ORG, [WRITE]) as client:
        yield client


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def send(sim: RunningSimulator, **fields: Any) -> str:
    return sim.send_correspondence(RESOURCE, RECIPIENT_ORG, **fields)


def details(client: httpx.Client, correspondence_id: str) -> dict[str, Any]:
    response = client.get(f"{BASE}/{correspondence_id}/details")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def history(client: httpx.Client, correspondence_id: str) -> list[str]:
    return [h["status"] for h in details(client, correspondence_id)["statusHistory"]]


def events(sim: RunningSimulator, instance: str, name: str | None = None) -> list[dict[str, Any]]:
    """The events published about `instance` (a correspondence or an attachment), oldest first."""
    return [
        e
        for e in sim.state_snapshot()["events"]
        if e.get("resourceinstance") == instance and (name is None or e["type"] == EVENT + name)
    ]


def problem_of(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["errorCode"], body["detail"]


def send_body(**correspondence: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceId": RESOURCE,
        "sendersReference": "konformitet",
        "content": {"language": "nb", "messageTitle": "Vedtak", "messageBody": "# Vedtak"},
    }
    body.update(correspondence)
    return body


def upload_form(**extra: str) -> dict[str, str]:
    return {
        "Correspondence.ResourceId": RESOURCE,
        "Correspondence.SendersReference": "opplasting",
        "Correspondence.Content.Language": "nb",
        "Correspondence.Content.MessageTitle": "Med vedlegg",
        "Correspondence.Content.MessageBody": "Se vedlegg.",
        "Recipients[0]": RECIPIENT,
        **extra,
    }


def test_7_1_a_token_with_the_write_scope_counts_as_the_sender(sim: RunningSimulator, recipient: httpx.Client) -> None:
    """Common/Helpers/ClaimsPrincipalExtensions.cs l. 71-75 (CallingAsSender: the scope claim contains
    altinn:correspondence.write); GetCorrespondenceOverviewHandler.cs l. 83 and GetCorrespondenceDetailsHandler.cs
    l. 81 (no Fetched for such a caller); MarkCorrespondenceAsReadHandler.cs l. 121-126 (1024) and
    ConfirmCorrespondenceHandler.cs l. 120-125 (1025)."""
    correspondence_id = send(sim, is_confirmation_needed=True)
    with api(sim, RECIPIENT_ORG, [READ, WRITE]) as both:
        assert both.get(f"{BASE}/{correspondence_id}").status_code == 200
        assert "Fetched" not in history(both, correspondence_id)
        assert problem_of(both.post(f"{BASE}/{correspondence_id}/markasread"))[:2] == (400, 1024)
        assert problem_of(both.post(f"{BASE}/{correspondence_id}/confirm"))[:2] == (400, 1025)
    assert recipient.get(f"{BASE}/{correspondence_id}").status_code == 200
    assert "Fetched" in history(recipient, correspondence_id), "the same organisation with the read scope alone"
    assert recipient.post(f"{BASE}/{correspondence_id}/markasread").status_code == 200


def test_7_2_expired_and_purged_attachments_cannot_be_downloaded(
    sim: RunningSimulator, recipient: httpx.Client, sender: httpx.Client, spec: dict[str, Any]
) -> None:
    """Application/Helpers/AttachmentHelper.cs l. 237-263 (purged 2019, expired by status or expirationTime 2020);
    Errors.cs l. 95-96; ExpireAttachmentHandler.cs l. 87-104 (status Expired, "The attachment has expired", event
    attachmentexpired to the sender with the attachment id); API/Models/Enums/AttachmentStatus.cs;
    Helpers/InitializeCorrespondenceHelper.cs l. 313, 334 (expirationTime only from expirationInDays)."""
    correspondence_id = send(sim, attachments=2)
    expiring, purged = details(recipient, correspondence_id)["content"]["attachments"]
    assert (expiring["status"], expiring["expirationTime"]) == ("Published", None)
    admin = f"/correspondences/{correspondence_id}/attachments"
    assert sim.admin.post(f"{admin}/{expiring['id']}/expire").json() == {
        "id": expiring["id"], "status": "Expired", "changed": True,
    }  # fmt: skip
    assert sim.admin.post(f"{admin}/{purged['id']}/purge").json()["status"] == "Purged"
    assert sim.admin.post(f"{admin}/{expiring['id']}/expire").json()["changed"] is False
    shown = details(recipient, correspondence_id)
    check(spec, "CorrespondenceDetailsExt", shown)
    statuses = {a["id"]: (a["status"], a["statusText"]) for a in shown["content"]["attachments"]}
    assert statuses == {expiring["id"]: ("Expired", "The attachment has expired"), purged["id"]: ("Purged", "Purged")}
    download = f"{BASE}/{correspondence_id}/attachment/{{}}/download"
    assert problem_of(recipient.get(download.format(expiring["id"]))) == (
        400, 2020, "The attachment has expired and cannot be downloaded",
    )  # fmt: skip
    assert problem_of(recipient.get(download.format(purged["id"]))) == (
        400, 2019, "The attachment has been purged and cannot be downloaded",
    )  # fmt: skip
    assert recipient.get(f"{BASE}/{correspondence_id}").status_code == 200, "the correspondence stays readable"
    [expired] = events(sim, expiring["id"], "attachmentexpired")
    assert (expired["subject"], expired["source"].rsplit("/", 1)[1]) == (SENDER, "attachment")
    assert [e["type"] for e in events(sim, purged["id"])] == [EVENT + "attachmentpublished"], "no event for a purge"

    form = upload_form(**{"Correspondence.Content.Attachments[0].FileName": "frist.txt",
                          "Correspondence.Content.Attachments[0].SendersReference": "v1",
                          "Correspondence.Content.Attachments[0].ExpirationInDays": "1"})  # fmt: skip
    uploaded = sender.post(f"{BASE}/upload", data=form, files=[("attachments", ("frist.txt", b"x", "text/plain"))])
    [sent] = uploaded.json()["correspondences"]
    [attachment] = details(recipient, sent["correspondenceId"])["content"]["attachments"]
    expires = (parse_iso(attachment["expirationTime"]) - parse_iso(now_iso())).total_seconds()
    assert 86000 < expires <= 86400


def test_7_3_the_sender_sees_no_content_once_published(
    sim: RunningSimulator, sender: httpx.Client, spec: dict[str, Any]
) -> None:
    """GetCorrespondenceOverviewHandler.cs l. 142-145 and GetCorrespondenceDetailsHandler.cs l. 168 (content only
    with recipient access or before Published), API/Mappers/CorrespondenceContentMapper.cs l. 10-19 (no content is
    written as an empty one in language "no"); Integrations/Altinn/Authorization/AltinnAuthorizationService.cs
    l. 154-183 (a service owner's token passes as recipient too, and so sees the content)."""
    correspondence_id = send(sim, title="Bare for mottaker", attachments=1)
    empty = {"language": "no", "messageTitle": "", "messageSummary": "", "messageBody": "", "attachments": []}
    for view in (sender.get(f"{BASE}/{correspondence_id}").json(), details(sender, correspondence_id)):
        assert view["content"] == empty
        assert (view["recipient"], view["status"], view["correspondenceId"]) == (
            RECIPIENT, "Published", correspondence_id,
        )  # fmt: skip
    check(spec, "CorrespondenceDetailsExt", details(sender, correspondence_id))
    scopes = ["altinn:serviceowner", WRITE]
    with api(sim, SENDER_ORG, scopes, service_owner="digdir") as owner:
        assert owner.get(f"{BASE}/{correspondence_id}").json()["content"]["messageTitle"] == "Bare for mottaker"


def test_7_4_the_status_is_the_highest_in_the_history_and_never_fetched(
    sim: RunningSimulator, recipient: httpx.Client
) -> None:
    """Application/Helpers/CorrespondenceExtensions.cs l. 6-13 (GetHighestStatus: highest enum value, Fetched left
    out); Core/Models/Enums/CorrespondenceStatus.cs (Read 4, Confirmed 6, AttachmentsDownloaded 12);
    DownloadCorrespondenceAttachmentHandler.cs l. 118-125."""
    correspondence_id = send(sim, is_confirmation_needed=True, attachments=1)
    url = f"{BASE}/{correspondence_id}"
    assert recipient.get(url).json()["status"] == "Published"
    assert recipient.get(url).json()["status"] == "Published", "Fetched is recorded but never the status"
    assert recipient.post(f"{url}/markasread").status_code == 200
    assert recipient.get(url).json()["status"] == "Read"
    assert recipient.post(f"{url}/confirm").status_code == 200
    wait_until(lambda: recipient.get(url).json()["status"] == "Confirmed", message="the confirmation")
    [attachment] = recipient.get(url).json()["content"]["attachments"]
    assert recipient.get(f"{url}/attachment/{attachment['id']}/download").status_code == 200
    shown = details(recipient, correspondence_id)
    assert (shown["status"], shown["statusText"]) == (
        "AttachmentsDownloaded", f"Attachment {attachment['id']} has been downloaded",
    )  # fmt: skip
    assert {"Fetched", "Read", "Confirmed", "AttachmentsDownloaded"} <= {h["status"] for h in shown["statusHistory"]}


def test_7_5_a_caller_who_is_neither_recipient_nor_sender_is_unauthorized(
    sim: RunningSimulator, recipient: httpx.Client
) -> None:
    """GetCorrespondenceOverviewHandler.cs l. 53-57, GetCorrespondenceDetailsHandler.cs l. 44-48,
    DownloadCorrespondenceAttachmentHandler.cs l. 52-57, MarkCorrespondenceAsReadHandler.cs l. 43-51,
    ConfirmCorrespondenceHandler.cs l. 38-46: AuthorizationErrors.NoAccessToResource, Errors.cs l. 130;
    API/Helpers/ProblemDetailsHelper.cs l. 19 (title "Unauthorized")."""
    correspondence_id = send(sim, attachments=1)
    [attachment] = details(recipient, correspondence_id)["content"]["attachments"]
    url = f"{BASE}/{correspondence_id}"
    with api(sim, STRANGER_ORG, [READ]) as stranger:
        answers = [
            stranger.get(url),
            stranger.get(f"{url}/details"),
            stranger.get(f"{url}/attachment/{attachment['id']}/download"),
            stranger.post(f"{url}/markasread"),
            stranger.post(f"{url}/confirm"),
        ]
    for answer in answers:
        assert problem_of(answer) == (401, 4001, NO_ACCESS_TEXT), answer.request.url
        assert (answer.json()["title"], answer.json()["code"]) == ("Unauthorized", "CORR-04001")


def test_7_6_a_message_body_may_have_30000_characters(sender: httpx.Client) -> None:
    """Application/Helpers/InitializeCorrespondenceHelper.cs l. 92-95; Errors.cs l. 26 (1022)."""
    content = {"language": "nb", "messageTitle": "Lang"}
    longest = sender.post(BASE, json={"correspondence": send_body(content={**content, "messageBody": "x" * 30000}),
                                      "recipients": [RECIPIENT]})  # fmt: skip
    assert longest.status_code == 200, longest.text
    too_long = sender.post(BASE, json={"correspondence": send_body(content={**content, "messageBody": "x" * 30001}),
                                       "recipients": [RECIPIENT]})  # fmt: skip
    assert problem_of(too_long) == (400, 1022, "Message body cannot exceed 30000 characters")


def test_7_7_an_idempotent_key_allows_one_recipient_only(sender: httpx.Client) -> None:
    """InitializeCorrespondences/InitializeCorrespondencesHandler.cs l. 50-56 (checked before anything else in the
    handler); Errors.cs l. 51 (1047)."""
    body = {"correspondence": send_body(), "recipients": [RECIPIENT, "urn:altinn:organization:identifier-no:"
            + STRANGER_ORG], "idempotentKey": str(uuid.uuid4())}  # fmt: skip
    assert problem_of(sender.post(BASE, json=body)) == (
        400, 1047, "Idempotency key is not supported for requests with multiple recipients",
    )  # fmt: skip


def test_7_11_problem_details_carry_error_code_and_code(recipient: httpx.Client, sender: httpx.Client) -> None:
    """API/Helpers/ProblemDetailsHelper.cs l. 11-13 (domain "CORR"), l. 29-52 (ToProblemResult: RFC type and title,
    integer errorCode) and l. 54-98 (ToValidationProblemResult: title "Bad Request", validationErrors beside the
    legacy errors); Altinn.Authorization.ProblemDetails 5.4.0 ErrorCode.cs (`CORR-` and five digits)."""
    missing = recipient.get(f"{BASE}/{uuid.uuid4()}")
    assert missing.headers["content-type"].startswith("application/problem+json")
    body = missing.json()
    assert (body["status"], body["title"], body["errorCode"], body["code"]) == (404, "Not Found", 1001, "CORR-01001")
    assert body["type"] == "https://tools.ietf.org/html/rfc9110#section-15.5.5"
    invalid = sender.post(BASE, json={"correspondence": send_body(resourceId=""), "recipients": [RECIPIENT]}).json()
    assert (invalid["status"], invalid["title"]) == (400, "Bad Request")
    assert invalid["validationErrors"] == [
        {"code": "CORR.VLD-00000", "title": "The ResourceId field is required.", "paths": ["Correspondence/ResourceId"]}
    ]
    assert invalid["errors"] == {"Correspondence.ResourceId": ["The ResourceId field is required."]}


def test_7_12_details_carry_read_and_a_system_label_and_no_allow_system_delete_after(
    sim: RunningSimulator, recipient: httpx.Client
) -> None:
    """API/Models/CorrespondenceDetailsExt.cs and CorrespondenceOverviewExt.cs l. 74 (read; no
    allowSystemDeleteAfter since #1718); GetCorrespondenceDetailsHandler.cs l. 60-77 and 179 (systemLabel asked of
    Dialogporten only with external references; read = the first Read); API/Mappers/CorrespondenceDetailsMapper.cs
    l. 39 (an unasked label is written as Default)."""
    correspondence_id = send(sim)
    first = details(recipient, correspondence_id)
    assert (first["read"], first["systemLabel"]) == (None, "Default")
    assert recipient.post(f"{BASE}/{correspondence_id}/markasread").status_code == 200
    read = details(recipient, correspondence_id)
    assert read["read"] == next(h["statusChanged"] for h in read["statusHistory"] if h["status"] == "Read")
    overview = recipient.get(f"{BASE}/{correspondence_id}").json()
    assert overview["read"] == read["read"]
    assert "allowSystemDeleteAfter" not in read and "allowSystemDeleteAfter" not in overview


def test_7_14_a_confirmation_is_applied_about_four_seconds_later() -> None:
    """ConfirmCorrespondenceHandler.cs l. 79-81 (the check scheduled 4 s ahead) and l. 120-131 (a repeated confirm
    meanwhile finds nothing confirmed and is accepted again); VerifyCorrespondenceConfirmationHandler.cs l. 40-44
    (a later check does nothing) and l. 53-70 (Confirmed, dated when confirm was called, and the event)."""
    with running_simulator(SimSettings(time_scale=2, seed_correspondences=0)) as sim, api(
        sim, RECIPIENT_ORG, [READ]
    ) as client:  # fmt: skip
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        correspondence_id = send(sim, is_confirmation_needed=True)
        url = f"{BASE}/{correspondence_id}"
        client.get(url)
        called = now_iso()
        started = time.monotonic()
        assert client.post(f"{url}/confirm").json() == correspondence_id
        assert client.post(f"{url}/confirm").status_code == 200, "not yet confirmed, so not refused as confirmed"
        assert "Confirmed" not in history(client, correspondence_id)
        assert events(sim, correspondence_id, "correspondencereceiverconfirmed") == []
        wait_until(lambda: client.get(url).json()["status"] == "Confirmed", timeout=20, message="the confirmation")
        assert time.monotonic() - started >= 1.5, "4 s at time_scale 2"
        confirmed = [h for h in details(client, correspondence_id)["statusHistory"] if h["status"] == "Confirmed"]
        assert len(confirmed) == 1 and called <= confirmed[0]["statusChanged"] < iso_after(1, parse_iso(called))
        assert len(events(sim, correspondence_id, "correspondencereceiverconfirmed")) == 1
        assert problem_of(client.post(f"{url}/confirm"))[:2] == (400, 1041)


def test_7_15_attachment_published_goes_to_the_sender_after_upload(sim: RunningSimulator, sender: httpx.Client) -> None:
    """MalwareScanResult/MalwareScanResultHandler.cs l. 57-72 (attachmentpublished, the attachment id, source
    `attachment`, to the sender), before PublishCorrespondenceHandler publishes the correspondence."""
    form = upload_form(**{"Correspondence.Content.Attachments[0].FileName": "vedtak.pdf",
                          "Correspondence.Content.Attachments[0].SendersReference": "v1"})  # fmt: skip
    response = sender.post(f"{BASE}/upload", data=form, files=[("attachments", ("vedtak.pdf", b"%PDF-1.4", "a/b"))])
    [attachment_id] = response.json()["attachmentIds"]
    correspondence_id = response.json()["correspondences"][0]["correspondenceId"]
    [published] = events(sim, attachment_id, "attachmentpublished")
    assert (published["subject"], published["alternativesubject"]) == (SENDER, f"/organisation/{SENDER_ORG}")
    assert published["source"].endswith("/correspondence/api/v1/attachment")
    log = [e["id"] for e in sim.state_snapshot()["events"]]
    [correspondence_published] = events(sim, correspondence_id, "correspondencepublished")
    assert log.index(published["id"]) < log.index(correspondence_published["id"])


def test_7_15_when_the_due_date_passes_the_recipient_hears_what_was_never_done(
    sim: RunningSimulator, recipient: httpx.Client
) -> None:
    """CorrespondenceDueDate/CorrespondenceDueDateHandler.cs l. 36-43 (neverread unless Read; neverconfirmed when a
    confirmation is needed and none was given; both to the recipient), scheduled at dueDateTime by
    InitializeCorrespondencesHandler.cs l. 146-149."""
    due = iso_after(3600)  # 3.6 s at time_scale 1000: time enough to read and confirm before
    unread_plain = send(sim, due=due)
    read_unconfirmed = send(sim, is_confirmation_needed=True, due=due)
    done = send(sim, is_confirmation_needed=True, due=due)
    unread_unconfirmed = send(sim, is_confirmation_needed=True, due=iso_after(3700))
    for correspondence_id in (read_unconfirmed, done):
        sim.admin.post(f"/correspondences/{correspondence_id}/read").raise_for_status()
    sim.admin.post(f"/correspondences/{done}/confirm").raise_for_status()
    wait_until(lambda: "Confirmed" in history(recipient, done), message="the confirmation")

    def due_events(correspondence_id: str) -> list[str]:
        found = [e for e in events(sim, correspondence_id) if e["type"].startswith(EVENT + "correspondencereceivern")]
        assert all(e["subject"] == RECIPIENT for e in found)
        return sorted(e["type"].removeprefix(EVENT) for e in found)

    both = ["correspondencereceiverneverconfirmed", "correspondencereceiverneverread"]
    wait_until(lambda: due_events(unread_unconfirmed) == both, message="the last due date to pass")
    assert due_events(unread_plain) == ["correspondencereceiverneverread"]
    assert due_events(read_unconfirmed) == ["correspondencereceiverneverconfirmed"]
    assert due_events(done) == []


def test_7_16_confidentiality_errors_are_the_senders_a_recipient_reads_as_usual(
    sim: RunningSimulator, sender: httpx.Client, recipient: httpx.Client
) -> None:
    """InitializeCorrespondences/InitializeCorrespondenceValidationHelper.cs l. 100-111 (1060 and 1061, 400, at
    initialization only); Errors.cs l. 60-61. No read path returns them: a recipient without the access package is
    refused by Altinn Authorization (4001), which the simulator does not model."""
    confidential = "conformance-confidential"
    sim.set_resource_owner(confidential, SENDER_ORG, confidential=True)
    plain = {"correspondence": send_body(resourceId=confidential), "recipients": [RECIPIENT]}
    assert problem_of(sender.post(BASE, json=plain))[:2] == (400, 1060)
    flagged = {"correspondence": send_body(isConfidential=True), "recipients": [RECIPIENT]}
    assert problem_of(sender.post(BASE, json=flagged))[:2] == (400, 1061)
    sent = sender.post(BASE, json={**plain, "correspondence": send_body(resourceId=confidential, isConfidential=True)})
    correspondence_id = sent.json()["correspondences"][0]["correspondenceId"]
    shown = recipient.get(f"{BASE}/{correspondence_id}")
    assert (shown.status_code, shown.json()["isConfidential"]) == (200, True)
    assert recipient.post(f"{BASE}/{correspondence_id}/markasread").status_code == 200


def test_7_18_upload_ignores_a_form_part_with_an_empty_name(sender: httpx.Client, recipient: httpx.Client) -> None:
    """API/Controllers/CorrespondenceController.cs l. 255-257: the request and the files are bound [FromForm] by
    name, so a part whose name is empty binds to nothing."""
    form = {**upload_form(), "": "stray"}
    files = [("", ("stray.txt", b"stray", "text/plain"))]
    response = sender.post(f"{BASE}/upload", data=form, files=files)
    assert response.status_code == 200, response.text
    [sent] = response.json()["correspondences"]
    assert recipient.get(f"{BASE}/{sent['correspondenceId']}").json()["content"]["attachments"] == []


def test_7_19_reading_the_content_records_fetched_then_read(sim: RunningSimulator, recipient: httpx.Client) -> None:
    """GetCorrespondenceOverviewHandler.cs l. 83-129 (OnlyGettingContent: Fetched, then Read and the receiverread
    event the first time), called by CorrespondenceController.cs l. 363-388 (`GET …/content`)."""
    correspondence_id = send(sim, body="# Innhold", is_confirmation_needed=True)
    content = recipient.get(f"{BASE}/{correspondence_id}/content")
    assert (content.status_code, content.text) == (200, "# Innhold")
    assert [s for s in history(recipient, correspondence_id) if s in ("Fetched", "Read")][:2] == ["Fetched", "Read"]
    [read] = events(sim, correspondence_id, "correspondencereceiverread")
    assert read["subject"] == SENDER
    assert recipient.post(f"{BASE}/{correspondence_id}/confirm").status_code == 200


def test_7_20_the_notification_template_is_optional_a_number_or_a_name_in_any_case(sender: httpx.Client) -> None:
    """API/Models/Enums/NotificationTemplateExt.cs; API/Models/InitializeCorrespondenceNotificationExt.cs
    l. 19-20 (`NotificationTemplateExt?`, bound by ASP.NET's enum binding);
    API/Mappers/InitializeCorrespondenceNotificationMapper.cs l. 16-31 (absent means CustomMessage) and l. 123-128
    (a number Core's enum lacks: "Invalid notification template")."""

    def sent(notification: dict[str, Any]) -> httpx.Response:
        body = {"correspondence": send_body(notification=notification), "recipients": [RECIPIENT]}
        return sender.post(BASE, json=body)

    for template in (0, 1, "customMessage", "GENERICALTINNMESSAGE", "GenericAltinnMessage", None):
        answer = sent({"notificationTemplate": template, "emailSubject": "Hei", "emailBody": "Se Altinn"})
        assert answer.status_code == 200, (template, answer.text)
    assert sent({"emailSubject": "Hei"}).status_code == 200
    refused = sent({"notificationTemplate": "Nope"})
    assert refused.status_code == 400
    assert "$.correspondence.notification.notificationTemplate" in refused.json()["errors"]
    assert (sent({"notificationTemplate": 7}).status_code, sent({"notificationTemplate": 7}).json()) == (
        400, "Invalid notification template",
    )  # fmt: skip
    attachment = {"Correspondence.Content.Attachments[0].FileName": "a.txt",
                  "Correspondence.Content.Attachments[0].SendersReference": "a"}  # fmt: skip
    for template in ("1", "customMessage"):
        form = upload_form(**attachment, **{"Correspondence.Notification.NotificationTemplate": template})
        files = [("attachments", ("a.txt", b"a", "text/plain"))]
        assert sender.post(f"{BASE}/upload", data=form, files=files).status_code == 200, template


# --- Events and authentication (7.8, 7.9, 7.10, 7.13, 7.17) ---
OWNER_ORG = "991825827"
SUBSCRIBE = "altinn:events.subscribe"
SUBSCRIPTIONS = "/events/api/v1/subscriptions"
EXCHANGE = "/authentication/api/v1/exchange/"
VALIDATION = "platform.events.validatesubscription"
KEY = new_key()

# Altinn's waits in its own seconds, read in [AE] (see test_7_10_push_schedules_are_altinns).
FUNCTIONS_PUSH = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200, 43200)
FUNCTIONS_VALIDATION = (30, 30, 30, 30)
WOLVERINE_PUSH = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200)
WOLVERINE_VALIDATION = (1, 5, 10, 30, 60, 120, 120, 120)


@pytest.fixture(scope="module")
def owner(sim: RunningSimulator) -> TestClient:
    return new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")


def fresh_resource() -> str:
    return f"urn:altinn:resource:conformance-{uuid.uuid4().hex[:12]}"


def subscribe(client: TestClient, body: dict[str, Any], scope: str | None = None) -> httpx.Response:
    with client.api(scope) as api:
        return api.post(SUBSCRIPTIONS, json=body)


def finished(sim: RunningSimulator, kind: str, subscription_id: int, status: str) -> dict[str, Any] | None:
    """The first delivery of `kind` to the subscription that reached `status`, from GET /_sim/state."""
    for delivery in sim.state_snapshot()["deliveries"]:
        if delivery["kind"] == kind and delivery["subscription_id"] == subscription_id and delivery["status"] == status:
            return dict(delivery)
    return None


def gaps(delivery: dict[str, Any]) -> list[float]:
    """Seconds between one attempt's end and the next one's."""
    times = [dt.datetime.fromisoformat(a["at"]) for a in delivery["attempts"]]
    return [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]


# --- 7.8 ---


def test_7_8_endpoint_is_stored_and_matched_as_absolute_uri(owner: TestClient) -> None:
    """[AE] src/Events/Repository/SubscriptionRepository.cs l. 51 (insert) and l. 75 (FindSubscription) store and
    match `EndPoint.AbsoluteUri`: .NET lower-cases scheme and host and drops the scheme's default port, so the
    same endpoint written two ways is one subscription. A port that is not the default still makes another one.
    (Loopback hosts, so the validation attempts go nowhere.)"""
    resource = fresh_resource()
    first = subscribe(owner, {"endPoint": "HTTPS://LocalHost:443/x?code=A", "resourceFilter": resource})
    again = subscribe(owner, {"endPoint": "https://localhost/x?code=A", "resourceFilter": resource})
    other_port = subscribe(owner, {"endPoint": "https://localhost:8443/x?code=A", "resourceFilter": resource})
    assert [first.status_code, again.status_code, other_port.status_code] == [201, 201, 201]
    assert first.json()["endPoint"] == "https://localhost/x?code=A"
    assert again.json()["id"] == first.json()["id"]
    assert other_port.json()["id"] != first.json()["id"]
    with owner.api() as api:
        mine = [s for s in api.get(SUBSCRIPTIONS).json()["subscriptions"] if s["resourceFilter"] == resource]
    assert sorted(s["endPoint"] for s in mine) == ["https://localhost/x?code=A", "https://localhost:8443/x?code=A"]


# --- 7.9 ---


@pytest.mark.parametrize(
    "body",
    [
        {"endPoint": "https://localhost/x", "resourceFilter": "urn:altinn:resource:Upper-Case"},
        {"endPoint": "https://localhost/x"},
        {"endPoint": "https://localhost/x", "resourceFilter": "urn:altinn:resource:r1", "includeSubunits": True},
    ],
    ids=["invalid-urn", "no-resource-filter", "subunits-without-subject"],
)
def test_7_9_subscribing_without_the_scope_is_403_with_an_empty_body_first(sim: RunningSimulator, body: Any) -> None:
    """[AE] src/Events/Controllers/SubscriptionController.cs l. 76-79: a non-app subscription without
    `altinn:events.subscribe` is `Forbid()` (403, no body) before the resource filter's URN check (l. 81-84) and
    GenericSubscriptionService's rules (l. 88-96). The same body with the scope gets its 400, so the 403 is the
    scope's. (Only the endpoint and source-filter checks, l. 64-72, come before it; see the next test.)"""
    client = new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read", SUBSCRIBE])
    refused = subscribe(client, body, scope="altinn:correspondence.read")
    assert refused.status_code == 403
    assert refused.content == b""
    with_scope = subscribe(client, body)
    assert with_scope.status_code == 400
    assert isinstance(with_scope.json(), str)


def test_7_9_only_the_endpoint_check_comes_before_the_scope(sim: RunningSimulator) -> None:
    """[AE] src/Events/Controllers/SubscriptionController.cs l. 64-67 answer a missing or non-https endpoint with
    400 before the scope is looked at (l. 76)."""
    client = new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read"])
    response = subscribe(client, {"endPoint": "http://example.com/x", "resourceFilter": fresh_resource()})
    assert response.status_code == 400
    assert response.json() == "Missing or invalid endpoint to push events towards"


# --- 7.10 ---


@pytest.mark.parametrize(
    ("settings", "push_delays", "validation_delays", "timeout"),
    [
        ({}, FUNCTIONS_PUSH, FUNCTIONS_VALIDATION, 300),
        ({"push_schedule": "wolverine"}, WOLVERINE_PUSH, WOLVERINE_VALIDATION, 45),
    ],
    ids=["functions-by-default", "wolverine"],
)
def test_7_10_push_schedules_are_altinns(
    settings: dict[str, Any], push_delays: tuple[int, ...], validation_delays: tuple[int, ...], timeout: int
) -> None:
    """Functions path, Altinn's default ([AE] src/Events/appsettings.json l. 39-40 leave the Wolverine outbound and
    validation listeners off): src/Events.Functions/Services/RetryBackoffService.cs l. 19, 54-56 and 93-105 requeue a
    failed push 12 times (13 attempts, 46 h 47 min); src/Events.Functions/host.json l. 20-21 retry a failed
    validation every 30 s up to 5 attempts; src/Events.Functions/Configuration/EventsOutboundSettings.cs l. 13: 300 s.
    Wolverine path: src/Events/appsettings.json l. 49-52 and l. 59-62 through ValidationEventHandlerPolicy.cs
    l. 41-43 and OutboundEventHandlerPolicy.cs l. 39-41: 9 validation attempts in about 8 minutes, 12 push attempts
    over 34 h 47 min; src/Events/Configuration/EventsOutboundSettings.cs l. 11: 45 s.
    Each wait is at least Altinn's divided by time_scale."""
    scale = 100_000
    with (
        running_simulator(SimSettings(time_scale=scale, seed_correspondences=0, **settings)) as sim,
        Webhook(status=503) as hook,
    ):
        schedule = sim.state_snapshot()["push_schedule"]
        assert (schedule["push_delays"], schedule["validation_delays"]) == (list(push_delays), list(validation_delays))
        assert schedule["push_timeout"] == timeout
        owner = new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        resource = fresh_resource()
        body = {"endPoint": hook.url + "/down", "resourceFilter": resource}
        sub_id = subscribe(owner, body).json()["id"]

        failed_validation = wait_until(lambda: finished(sim, "validation", sub_id, "dead_letter"), message="validation")
        assert failed_validation["attempt_count"] == len(validation_delays) + 1
        assert len(hook.of_type(VALIDATION)) == len(validation_delays) + 1
        assert all(gap >= delay / scale for gap, delay in zip(gaps(failed_validation), validation_delays, strict=True))

        hook.status = 200
        assert subscribe(owner, body).json()["id"] == sub_id  # a repeated POST validates again
        wait_until(lambda: finished(sim, "validation", sub_id, "delivered"), message="the second validation")
        hook.status = 503
        doomed = event(resource)
        sim.publish_event(doomed)
        dead = wait_until(lambda: finished(sim, "event", sub_id, "dead_letter"), timeout=30, message="dead letter")
        assert dead["event_id"] == doomed["id"]
        assert dead["attempt_count"] == len(push_delays) + 1
        assert len(hook.of_type(doomed["type"])) == len(push_delays) + 1
        assert all(gap >= delay / scale for gap, delay in zip(gaps(dead), push_delays, strict=True))


def test_7_10_push_timeout_is_the_setting_and_never_scaled() -> None:
    """[AE] src/Events.Functions/Services/WebhookService.cs l. 36 and src/Events/Services/WebhookService.cs l. 38 set
    the push client's timeout to RequestTimeout seconds: real seconds, which time_scale does not shorten. With
    `push_timeout` at 0.5 s and time_scale 1000, an endpoint answering in 0.2 s is validated (a scaled timeout would
    be 0.5 ms) and one answering in 1.5 s times out."""
    settings = SimSettings(time_scale=1000, seed_correspondences=0, push_timeout=0.5)
    with running_simulator(settings) as sim, Webhook(delay=0.2) as hook:
        assert sim.state_snapshot()["push_schedule"]["push_timeout"] == 0.5
        owner = new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        resource = fresh_resource()
        sub_id = subscribe(owner, {"endPoint": hook.url + "/slow", "resourceFilter": resource}).json()["id"]
        validation = wait_until(lambda: finished(sim, "validation", sub_id, "delivered"), message="validation")
        assert validation["attempts"][0]["outcome"] == "200"
        hook.delay = 1.5
        sim.publish_event(event(resource))

        def first_outcome() -> str | None:
            for delivery in sim.state_snapshot()["deliveries"]:
                if delivery["kind"] == "event" and delivery["subscription_id"] == sub_id and delivery["attempts"]:
                    return str(delivery["attempts"][0]["outcome"])
            return None

        assert wait_until(first_outcome, message="the first push attempt") == "ReadTimeout"


# --- 7.13 ---


def test_7_13_exchange_refuses_a_missing_or_unreadable_token_before_the_provider(
    sim: RunningSimulator, owner: TestClient
) -> None:
    """[AA] src/Authentication/Controllers/AuthenticationController.cs l. 331-341: no token, or one
    JwtSecurityTokenHandler cannot read, is 401 (the [ApiController] maps `Unauthorized()` to ProblemDetails) before
    the provider is looked at; only a readable token reaches l. 343-353, where an unknown provider is 400 with
    Altinn's message as plain text."""
    unknown = sim.url + EXCHANGE + "google"
    missing = httpx.get(unknown)
    unreadable = httpx.get(unknown, headers={"Authorization": "Bearer ThisTokenShouldNotBeReadable"})
    for response in (missing, unreadable):
        assert response.status_code == 401
        assert response.json()["status"] == 401
    readable = httpx.get(unknown, headers={"Authorization": "Bearer " + owner.maskinporten_token()})
    assert readable.status_code == 400
    assert readable.text == (
        "Invalid token provider: google. Trusted token providers are 'Maskinporten', 'Id-porten' and 'AltinnStudio'."
    )


def test_7_13_enterprise_user_exchange_is_410_problem_details(sim: RunningSimulator, owner: TestClient) -> None:
    """[AA] src/Authentication/Controllers/AuthenticationController.cs l. 481-493: with a valid Maskinporten token,
    the `X-Altinn-EnterpriseUser-Authentication` header gets 410 Gone with a ProblemDetails body; without a valid
    token the 401 of l. 331-341 and l. 522-525 comes first."""
    url = sim.url + EXCHANGE + "maskinporten"
    enterprise = {"X-Altinn-EnterpriseUser-Authentication": "dXNlcjpwYXNz"}
    gone = httpx.get(url, headers={**enterprise, "Authorization": "Bearer " + owner.maskinporten_token()})
    assert gone.status_code == 410
    problem = gone.json()
    assert problem["status"] == 410
    assert problem["title"] == "Virksomhetsbruker is no longer available"
    assert "Systembruker" in problem["detail"]
    assert httpx.get(url, headers=enterprise).status_code == 401


# --- 7.17 ---


def test_7_17_maskinporten_refuses_an_aud_without_the_trailing_slash(sim: RunningSimulator, owner: TestClient) -> None:
    """Digdir's maskinporten_protocol_jwtgrant: `aud` must be the issuer identifier exactly
    (`https://test.maskinporten.no/`, slash included); the same assertion with the slash is granted."""
    assert sim.issuer.endswith("/")
    refused = owner.grant(owner.assertion(aud=sim.issuer.rstrip("/")))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert owner.grant(owner.assertion(aud=sim.issuer)).status_code == 200


@dataclass(frozen=True)
class IssuerWithoutSlash:
    """The simulator as a receiver config sees it, with `[maskinporten] issuer` written without its trailing slash."""

    url: str

    @property
    def issuer(self) -> str:
        return self.url


def test_7_17_receiver_config_adds_the_issuers_trailing_slash(tmp_path: Path) -> None:
    """Digdir's maskinporten_protocol_jwtgrant: the simulator's Maskinporten grants only an `aud` equal to its
    issuer, slash included, so a receiver configured with `issuer = "http://127.0.0.1:<port>"` gets its Maskinporten
    and Altinn tokens only because receiver/config.py adds the slash."""
    scopes = [SUBSCRIBE, "altinn:correspondence.read"]
    with simulator_with_client(KEY, scopes, OWNER_ORG, SimSettings(seed_correspondences=0)) as sim:
        stand_in = IssuerWithoutSlash(sim.url)
        config_file = stand_in_config_file(stand_in, tmp_path, KEY, scopes=scopes)
        assert f'issuer = "{sim.url}"' in config_file.read_text()
        assert load_config(config_file).maskinporten.issuer == sim.issuer

        async def tokens(clients: AltinnClients) -> tuple[dict[str, Any], dict[str, Any]]:
            maskinporten = await clients.tokens.maskinporten()
            altinn = await clients.tokens.altinn()
            return maskinporten.claims, altinn.claims

        maskinporten, altinn = call(stand_in, tmp_path, KEY, tokens, scopes=scopes)
    assert maskinporten["iss"] == sim.issuer
    assert altinn["urn:altinn:orgNumber"] == OWNER_ORG
