"""Correspondences in memory: the model, its JSON shapes (the API's *Ext models), status transitions, the background
jobs Altinn schedules and the events each transition publishes (correspondence contract §1, §2 and §7, events
contract §3.4). Paths in comments are in Altinn/altinn-correspondence under `src/Altinn.Correspondence.*`."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from altinn_sim.cloudevent import event_time
from altinn_sim.correspondence_errors import (
    ALREADY_CONFIRMED,
    ALREADY_PURGED,
    ALREADY_READ,
    ARCHIVE_BEFORE_CONFIRMED,
    ATTACHMENT_EXPIRED,
    ATTACHMENT_NOT_FOUND,
    ATTACHMENT_PURGED,
    CANT_PURGE_PUBLISHED,
    CONFIRM_BEFORE_FETCHED,
    CORRESPONDENCE_NOT_FOUND,
    READ_BEFORE_FETCHED,
    CorrespondenceError,
)
from altinn_sim.events import Events
from altinn_sim.resources import ORG_SUBJECT_PREFIX, resource_urn
from altinn_sim.scheduler import Scheduler
from receiver.timeutil import now, now_iso, parse_iso

# Core/Models/Enums/CorrespondenceStatus.cs: the top-level status is the highest of these numbers in the history.
STATUS_VALUES = {
    name: number
    for number, name in enumerate(
        (
            "Initialized",
            "ReadyForPublish",
            "Published",
            "Fetched",
            "Read",
            "Replied",
            "Confirmed",
            "PurgedByRecipient",
            "PurgedByAltinn",
            "Archived",
            "Reserved",
            "Failed",
            "AttachmentsDownloaded",
            "Forwarded",
        )
    )
}
# Application/Helpers/CorrespondenceExtensions.cs: IsAvailableForRecipient, IsAvailableForSender, IsPurged.
AVAILABLE_FOR_RECIPIENT = frozenset(
    {"Published", "Fetched", "Read", "Replied", "Confirmed", "Archived", "Reserved", "AttachmentsDownloaded",
     "Forwarded"}
)  # fmt: skip
AVAILABLE_FOR_SENDER = frozenset(
    {"Initialized", "ReadyForPublish", "Failed", "Published", "Fetched", "Read", "Confirmed", "Replied", "Reserved",
     "AttachmentsDownloaded", "Forwarded"}
)  # fmt: skip
PURGED = frozenset({"PurgedByRecipient", "PurgedByAltinn"})
EVENT_TYPE_PREFIX = "no.altinn.correspondence."
CONFIRMATION_CHECK_DELAY = 4.0
"""ConfirmCorrespondenceHandler schedules VerifyCorrespondenceConfirmationHandler this many seconds later."""
# API/Mappers/CorrespondenceContentMapper.cs: what a caller who may not see the content gets instead of it.
NO_CONTENT: dict[str, Any] = {
    "language": "no",
    "messageTitle": "",
    "messageSummary": "",
    "messageBody": "",
    "attachments": [],
}


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def alternative_subject(urn: str) -> str | None:
    """`/organisation/<9>` or `/person/<11>`, as AltinnEventBus derives it."""
    number = urn.rsplit(":", 1)[-1]
    if number.isdigit() and len(number) == 9:
        return f"/organisation/{number}"
    if number.isdigit() and len(number) == 11:
        return f"/person/{number}"
    return None


@dataclass
class StatusEvent:
    """One row of a correspondence's or an attachment's status history."""

    status: str
    changed: str = field(default_factory=now_iso)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "statusText": self.text or self.status, "statusChanged": self.changed}


@dataclass
class Attachment:
    file_name: str
    display_name: str
    data: bytes
    data_type: str
    senders_reference: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)
    expiration_time: str | None = None
    """Set only when the sender gave `expirationInDays` (InitializeCorrespondenceHelper.cs)."""
    statuses: list[StatusEvent] = field(default_factory=lambda: [StatusEvent("Published")])

    @property
    def checksum(self) -> str:
        return md5_hex(self.data)

    @property
    def latest(self) -> StatusEvent:
        """AttachmentExtensions.GetLatestStatus: the most recent status."""
        return self.statuses[-1]

    def has(self, status: str) -> bool:
        return any(s.status == status for s in self.statuses)

    def check_downloadable(self) -> None:
        """AttachmentHelper.ValidateDownloadCorrespondenceAttachment: purged 2019, expired (by status or time) 2020."""
        if self.has("Purged"):
            raise CorrespondenceError(ATTACHMENT_PURGED)
        if self.has("Expired") or (self.expiration_time and parse_iso(self.expiration_time) <= now()):
            raise CorrespondenceError(ATTACHMENT_EXPIRED)

    def to_json(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "id": self.id,
            "fileName": self.file_name,
            "displayName": self.display_name,
            "isEncrypted": False,
            "checksum": self.checksum,
            "sendersReference": self.senders_reference,
            "dataLocationType": "AltinnCorrespondenceAttachment",
            "created": self.created,
            "status": latest.status,
            "statusText": latest.text or latest.status,
            "statusChanged": latest.changed,
            "expirationTime": self.expiration_time,
            "dataType": self.data_type,
        }


@dataclass
class Correspondence:
    resource_id: str
    sender_org: str
    recipient: str
    senders_reference: str
    language: str
    title: str
    summary: str | None
    body: str
    attachments: list[Attachment] = field(default_factory=list)
    is_confirmation_needed: bool = False
    is_confidential: bool = False
    allow_forwarding: bool = False
    due: str | None = None
    message_sender: str | None = None
    property_list: dict[str, str] = field(default_factory=dict)
    external_references: list[dict[str, Any]] = field(default_factory=list)
    reply_options: list[dict[str, Any]] = field(default_factory=list)
    idempotent_key: str | None = None
    notification_order_ids: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)
    history: list[StatusEvent] = field(default_factory=list)

    @property
    def sender(self) -> str:
        return ORG_SUBJECT_PREFIX + self.sender_org

    def has(self, status: str) -> bool:
        return any(event.status == status for event in self.history)

    def first(self, status: str) -> str | None:
        """When `status` was first recorded (GetReadTimestamp takes the first Read)."""
        return next((e.changed for e in self.history if e.status == status), None)

    @property
    def current(self) -> StatusEvent:
        """GetHighestStatus: the highest status by enum value, Fetched left out; the first of equals."""
        ranked = [e for e in self.history if e.status != "Fetched"]
        return max(ranked, key=lambda e: STATUS_VALUES[e.status])

    @property
    def purged(self) -> bool:
        return any(e.status in PURGED for e in self.history)

    def attachment(self, attachment_id: str) -> Attachment:
        found = next((a for a in self.attachments if a.id == attachment_id), None)
        if found is None:
            raise CorrespondenceError(ATTACHMENT_NOT_FOUND)
        return found

    def check_available_to_recipient(self) -> None:
        """404 1001 unless the highest status is one a recipient may see (and not a purge)."""
        if self.current.status not in AVAILABLE_FOR_RECIPIENT:
            raise CorrespondenceError(CORRESPONDENCE_NOT_FOUND)

    def overview_json(self, *, recipient_access: bool) -> dict[str, Any]:
        """CorrespondenceOverviewExt. Without recipient access the content is Altinn's empty stand-in once published
        (GetCorrespondenceOverviewHandler.cs l. 143 sets it null; CorrespondenceContentMapper fills it in)."""
        current = self.current
        content = (
            {
                "language": self.language,
                "messageTitle": self.title,
                "messageSummary": self.summary,
                "messageBody": self.body,
                "attachments": [a.to_json() for a in self.attachments],
            }
            if recipient_access or not self.has("Published")
            else dict(NO_CONTENT)
        )
        return {
            "resourceId": self.resource_id,
            "sender": self.sender,
            "sendersReference": self.senders_reference,
            "messageSender": self.message_sender or "",
            "content": content,
            "requestedPublishTime": self.created,
            "dueDateTime": self.due,
            "externalReferences": self.external_references,
            "propertyList": self.property_list,
            "replyOptions": self.reply_options,
            "ignoreReservation": False,
            "published": self.first("Published"),
            "isConfirmationNeeded": self.is_confirmation_needed,
            "isConfidential": self.is_confidential,
            "allowForwarding": self.allow_forwarding,
            "recipient": self.recipient,
            "correspondenceId": self.id,
            "created": self.created,
            "status": current.status,
            "statusText": current.text or current.status,
            "statusChanged": current.changed,
            "notifications": [{"notificationOrderId": o, "isReminder": False} for o in self.notification_order_ids],
            "altinn2CorrespondenceId": None,
            "read": self.first("Read"),
        }

    def details_json(self, *, recipient_access: bool) -> dict[str, Any]:
        """CorrespondenceDetailsExt: the overview with full notifications, the status history (without the
        statuses a sender may not see, for a caller without recipient access) and `systemLabel`."""
        details = self.overview_json(recipient_access=recipient_access)
        details["notifications"] = [
            {
                "id": order,
                "sendersReference": None,
                "requestedSendTime": self.created,
                "creator": None,
                "created": self.created,
                "isReminder": False,
                "notificationChannel": "Email",
                "ignoreReservation": False,
                "resourceId": self.resource_id,
            }
            for order in self.notification_order_ids
        ]
        history = sorted(self.history, key=lambda e: e.changed)
        details["statusHistory"] = [
            e.to_json() for e in history if recipient_access or e.status in AVAILABLE_FOR_SENDER
        ]
        # GetCorrespondenceDetailsHandler asks Dialogporten only when there are external references; the mapper
        # answers Default for none, and the simulator has no Dialogporten to ask.
        details["systemLabel"] = "Default"
        return details


class Correspondences:
    """The store, and the transitions the API and the admin API share."""

    def __init__(self, events: Events, base_url: str, scheduler: Scheduler) -> None:
        self.items: dict[str, Correspondence] = {}
        self.events = events
        self.scheduler = scheduler
        self.source = base_url + "/correspondence/api/v1/"

    def get(self, correspondence_id: str) -> Correspondence:
        found = self.items.get(correspondence_id)
        if found is None:
            raise CorrespondenceError(CORRESPONDENCE_NOT_FOUND)
        return found

    def by_idempotent_key(self, key: str) -> Correspondence | None:
        return next((c for c in self.items.values() if c.idempotent_key == key), None)

    def add(self, correspondence: Correspondence, *, notify: bool, push: bool = True) -> None:
        """Store and publish at once: Initialized → ReadyForPublish → Published, with the events Altinn publishes
        on the way (InitializeCorrespondencesHandler, MalwareScanResultHandler, PublishCorrespondenceHandler), and
        schedule the due-date job and the attachments' expiry."""
        self.items[correspondence.id] = correspondence
        for status in ("Initialized", "ReadyForPublish", "Published"):
            correspondence.history.append(StatusEvent(status))
        self._publish(correspondence, "correspondenceinitialized", correspondence.sender, push=push)
        if notify:
            order = str(uuid.uuid4())
            correspondence.notification_order_ids.append(order)
            self._publish(
                correspondence, "notificationcreated", correspondence.sender, source="notification",
                instance=order, push=push,
            )  # fmt: skip
        for attachment in correspondence.attachments:
            self._publish(
                correspondence, "attachmentpublished", correspondence.sender, source="attachment",
                instance=attachment.id, push=push,
            )  # fmt: skip
        self._publish(correspondence, "correspondencepublished", correspondence.recipient, push=push)
        if correspondence.due:
            self.scheduler.at(parse_iso(correspondence.due), lambda: self.due_date_passed(correspondence))
        for attachment in correspondence.attachments:
            if attachment.expiration_time:
                self._schedule_expiry(correspondence, attachment, parse_iso(attachment.expiration_time))

    def _schedule_expiry(self, correspondence: Correspondence, attachment: Attachment, moment: datetime) -> None:
        self.scheduler.at(moment, lambda: self.expire_attachment(correspondence, attachment))

    def fetch(self, correspondence: Correspondence) -> None:
        """A recipient's GET of overview or details (not as a sender): 404 unless available, then Fetched."""
        correspondence.check_available_to_recipient()
        correspondence.history.append(StatusEvent("Fetched"))

    def read_content(self, correspondence: Correspondence) -> None:
        """GET /content (GetCorrespondenceOverviewHandler with OnlyGettingContent): Fetched, then Read the first
        time, with the receiverread event."""
        self.fetch(correspondence)
        if not correspondence.has("Read"):
            self._read(correspondence)

    def _check_recipient_action(self, correspondence: Correspondence) -> None:
        """ValidateCurrentStatus of MarkCorrespondenceAsReadHandler and ConfirmCorrespondenceHandler."""
        if correspondence.current.status not in AVAILABLE_FOR_RECIPIENT or correspondence.current.status in PURGED:
            raise CorrespondenceError(CORRESPONDENCE_NOT_FOUND)

    def mark_read(self, correspondence: Correspondence) -> None:
        self._check_recipient_action(correspondence)
        if not correspondence.has("Fetched"):
            raise CorrespondenceError(READ_BEFORE_FETCHED)
        if correspondence.has("Read"):
            raise CorrespondenceError(ALREADY_READ)
        self._read(correspondence)

    def confirm(self, correspondence: Correspondence) -> None:
        """Accept the confirmation; Confirmed (dated now) and its event follow CONFIRMATION_CHECK_DELAY later, as
        VerifyCorrespondenceConfirmationHandler records them. Until then a repeated confirm is accepted again."""
        self._check_recipient_action(correspondence)
        if not correspondence.has("Fetched"):
            raise CorrespondenceError(CONFIRM_BEFORE_FETCHED)
        if correspondence.has("Confirmed"):
            raise CorrespondenceError(ALREADY_CONFIRMED)
        accepted = now_iso()
        self.scheduler.after(CONFIRMATION_CHECK_DELAY, lambda: self._commit_confirmation(correspondence, accepted))

    def _commit_confirmation(self, correspondence: Correspondence, accepted: str) -> None:
        if correspondence.has("Confirmed"):
            return
        correspondence.history.append(StatusEvent("Confirmed", accepted))
        self._publish(correspondence, "correspondencereceiverconfirmed", correspondence.sender)

    def purge_by_sender(self, correspondence: Correspondence) -> NoReturn:
        """PurgeCorrespondenceHelper.ValidatePurgeRequestSender: everything here is published, so never allowed."""
        if correspondence.current.status in PURGED:
            raise CorrespondenceError(ALREADY_PURGED)
        raise CorrespondenceError(CANT_PURGE_PUBLISHED)

    def purge_by_recipient(self, correspondence: Correspondence) -> None:
        """ValidatePurgeRequestRecipient, then PurgedByRecipient, the attachments purged, and the event."""
        if correspondence.current.status in PURGED:
            raise CorrespondenceError(ALREADY_PURGED)
        correspondence.check_available_to_recipient()
        if correspondence.is_confirmation_needed and not correspondence.has("Confirmed"):
            raise CorrespondenceError(ARCHIVE_BEFORE_CONFIRMED)
        correspondence.history.append(StatusEvent("PurgedByRecipient"))
        for attachment in correspondence.attachments:
            self.purge_attachment(attachment)
        self._publish(correspondence, "correspondencepurged", correspondence.sender)

    def download(self, correspondence: Correspondence, attachment: Attachment) -> None:
        """DownloadCorrespondenceAttachmentHandler after its access check: the attachment's state, then the
        correspondence's, then AttachmentsDownloaded."""
        attachment.check_downloadable()
        correspondence.check_available_to_recipient()
        correspondence.history.append(
            StatusEvent("AttachmentsDownloaded", text=f"Attachment {attachment.id} has been downloaded")
        )

    def expire_attachment(self, correspondence: Correspondence, attachment: Attachment) -> bool:
        """ExpireAttachmentHandler: Expired and the attachmentexpired event to the sender, unless already purged
        or expired (then False)."""
        if attachment.has("Purged") or attachment.has("Expired"):
            return False
        attachment.statuses.append(StatusEvent("Expired", text="The attachment has expired"))
        self._publish(
            correspondence, "attachmentexpired", correspondence.sender, source="attachment", instance=attachment.id
        )
        return True

    @staticmethod
    def purge_attachment(attachment: Attachment) -> bool:
        """PurgeCorrespondenceHelper.CheckAndPurgeAttachments: Purged, unless already purged or expired (then
        False). Altinn publishes no event for it (attachmentpurged is never sent)."""
        if attachment.has("Purged") or attachment.has("Expired"):
            return False
        attachment.statuses.append(StatusEvent("Purged"))
        return True

    def due_date_passed(self, correspondence: Correspondence) -> None:
        """CorrespondenceDueDateHandler: to the recipient, neverread unless it was read, and neverconfirmed when a
        confirmation is needed and was not given."""
        if not correspondence.has("Published") or correspondence.has("Failed"):
            return
        if not correspondence.has("Read"):
            self._publish(correspondence, "correspondencereceiverneverread", correspondence.recipient)
        if correspondence.is_confirmation_needed and not correspondence.has("Confirmed"):
            self._publish(correspondence, "correspondencereceiverneverconfirmed", correspondence.recipient)

    def _read(self, correspondence: Correspondence) -> None:
        correspondence.history.append(StatusEvent("Read"))
        self._publish(correspondence, "correspondencereceiverread", correspondence.sender)

    def _publish(
        self,
        correspondence: Correspondence,
        name: str,
        party: str,
        *,
        source: str = "correspondence",
        instance: str | None = None,
        push: bool = True,
    ) -> None:
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "time": event_time(),
            "type": EVENT_TYPE_PREFIX + name,
            "source": self.source + source,
            "subject": party,
            "alternativesubject": alternative_subject(party),
            "resource": resource_urn(correspondence.resource_id),
            "resourceinstance": instance or correspondence.id,
        }
        self.events.publish(event, push=push)
