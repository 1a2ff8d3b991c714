"""Correspondences in memory: the model, its JSON shapes (the API's *Ext models), status transitions and the
events each transition publishes (correspondence contract §1 and §2, events contract §3.4)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from altinn_sim.cloudevent import event_time
from altinn_sim.events import Events
from altinn_sim.resources import ORG_SUBJECT_PREFIX, resource_urn
from receiver.timeutil import iso_after, now_iso

AVAILABLE_FOR_RECIPIENT = frozenset(
    {
        "Published",
        "Fetched",
        "Read",
        "Replied",
        "Confirmed",
        "Archived",
        "Reserved",
        "AttachmentsDownloaded",
        "Forwarded",
    }
)
# How far each status carries a correspondence: a later Fetched does not undo Read or Confirmed.
PROGRESS = ("Initialized", "ReadyForPublish", "Published", "Fetched", "Read", "Confirmed", "PurgedByRecipient")
EVENT_TYPE_PREFIX = "no.altinn.correspondence."


class CorrespondenceError(Exception):
    """One of Altinn's numbered errors (Errors.cs): answered as ProblemDetails with `errorCode`."""

    def __init__(self, code: int, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


NOT_FOUND = (1001, 404, "The requested correspondence was not found")
ATTACHMENT_NOT_FOUND = (2001, 404, "The requested attachment was not found")


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
class Attachment:
    file_name: str
    display_name: str
    data: bytes
    data_type: str
    senders_reference: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)

    @property
    def checksum(self) -> str:
        return md5_hex(self.data)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fileName": self.file_name,
            "displayName": self.display_name,
            "isEncrypted": False,
            "checksum": self.checksum,
            "sendersReference": self.senders_reference,
            "dataLocationType": "AltinnCorrespondenceAttachment",
            "created": self.created,
            "status": "Published",
            "statusText": "Published",
            "statusChanged": self.created,
            "expirationTime": iso_after(timedelta(days=365).total_seconds()),
            "dataType": self.data_type,
        }


@dataclass
class StatusEvent:
    status: str
    changed: str = field(default_factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "statusText": self.status, "statusChanged": self.changed}


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

    def when(self, status: str) -> str | None:
        return next((e.changed for e in reversed(self.history) if e.status == status), None)

    @property
    def current(self) -> StatusEvent:
        progress = [e for e in self.history if e.status in PROGRESS]
        return max(progress, key=lambda e: PROGRESS.index(e.status))

    def overview_json(self) -> dict[str, Any]:
        current = self.current
        return {
            "resourceId": self.resource_id,
            "sender": self.sender,
            "sendersReference": self.senders_reference,
            "messageSender": self.message_sender or "",
            "content": {
                "language": self.language,
                "messageTitle": self.title,
                "messageSummary": self.summary,
                "messageBody": self.body,
                "attachments": [a.to_json() for a in self.attachments],
            },
            "requestedPublishTime": self.created,
            "allowSystemDeleteAfter": None,
            "dueDateTime": self.due,
            "externalReferences": self.external_references,
            "propertyList": self.property_list,
            "replyOptions": self.reply_options,
            "ignoreReservation": False,
            "published": self.when("Published"),
            "isConfirmationNeeded": self.is_confirmation_needed,
            "isConfidential": False,
            "allowForwarding": True,
            "recipient": self.recipient,
            "correspondenceId": self.id,
            "created": self.created,
            "status": current.status,
            "statusText": current.status,
            "statusChanged": current.changed,
            "notifications": [{"notificationOrderId": o, "isReminder": False} for o in self.notification_order_ids],
            "altinn2CorrespondenceId": None,
            "read": self.when("Read"),
        }

    def details_json(self) -> dict[str, Any]:
        details = self.overview_json()
        del details["read"]
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
        details["statusHistory"] = [e.to_json() for e in self.history]
        details["systemLabel"] = "Default"
        return details


class Correspondences:
    """The store, and the transitions the API and the admin API share."""

    def __init__(self, events: Events, base_url: str) -> None:
        self.items: dict[str, Correspondence] = {}
        self.events = events
        self.source = base_url + "/correspondence/api/v1/"

    def get(self, correspondence_id: str) -> Correspondence:
        found = self.items.get(correspondence_id)
        if found is None:
            raise CorrespondenceError(*NOT_FOUND)
        return found

    def by_idempotent_key(self, key: str) -> Correspondence | None:
        return next((c for c in self.items.values() if c.idempotent_key == key), None)

    def add(self, correspondence: Correspondence, *, notify: bool, push: bool = True) -> None:
        """Store and publish at once: Initialized → ReadyForPublish → Published, with their events."""
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
        self._publish(correspondence, "correspondencepublished", correspondence.recipient, push=push)

    def fetch(self, correspondence: Correspondence) -> None:
        if correspondence.current.status not in AVAILABLE_FOR_RECIPIENT:
            raise CorrespondenceError(*NOT_FOUND)
        correspondence.history.append(StatusEvent("Fetched"))

    def mark_read(self, correspondence: Correspondence) -> None:
        if not correspondence.has("Fetched"):
            raise CorrespondenceError(1024, 400, "Correspondence must be fetched before it can be read")
        if correspondence.has("Read"):
            raise CorrespondenceError(1040, 400, "Correspondence is already marked as read")
        self._read(correspondence)

    def read_content(self, correspondence: Correspondence) -> None:
        """GET /content: the first one marks the correspondence read."""
        if not correspondence.has("Read"):
            self._read(correspondence)

    def confirm(self, correspondence: Correspondence) -> None:
        if not correspondence.has("Fetched"):
            raise CorrespondenceError(1025, 400, "Correspondence must be fetched before it can be confirmed")
        if correspondence.has("Confirmed"):
            raise CorrespondenceError(1041, 400, "Correspondence has already been confirmed")
        correspondence.history.append(StatusEvent("Confirmed"))
        self._publish(correspondence, "correspondencereceiverconfirmed", correspondence.sender)

    def purge_by_recipient(self, correspondence: Correspondence) -> None:
        if correspondence.has("PurgedByRecipient"):
            raise CorrespondenceError(1014, 400, "Correspondence has already been purged")
        if correspondence.is_confirmation_needed and not correspondence.has("Confirmed"):
            raise CorrespondenceError(
                1026, 400,
                "Cannot archive or delete a correspondence which has not been confirmed when confirmation is required",
            )  # fmt: skip
        correspondence.history.append(StatusEvent("PurgedByRecipient"))
        self._publish(correspondence, "correspondencepurged", correspondence.sender)

    def attachment(self, correspondence: Correspondence, attachment_id: str) -> Attachment:
        found = next((a for a in correspondence.attachments if a.id == attachment_id), None)
        if found is None:
            raise CorrespondenceError(*ATTACHMENT_NOT_FOUND)
        correspondence.history.append(StatusEvent("AttachmentsDownloaded"))
        return found

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
