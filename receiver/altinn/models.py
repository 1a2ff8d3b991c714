"""Small typed views of what the receiver reads from Maskinporten and Altinn; `raw` keeps the whole JSON.

Altinn's ASP.NET services bind JSON names case-insensitively and have spelt some both ways (`endPoint`/`endpoint`),
so fields are looked up without regard to case. A response of the wrong shape is a PermanentError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt

from receiver.altinn.errors import PermanentError
from receiver.timeutil import parse_iso


@dataclass(frozen=True)
class Token:
    """An access token, when it expires (epoch seconds) and its claims, read without verifying the signature."""

    value: str = field(repr=False)
    expires_at: float
    obtained_at: float
    claims: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.obtained_at

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(str(self.claims.get("scope", "")).split())


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT without checking its signature (for expiry and display only), or None if not a JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims if isinstance(claims, dict) else None


def _field(raw: dict[str, Any], name: str) -> Any:
    if name in raw:
        return raw[name]
    lower = name.lower()
    for key, value in raw.items():
        if key.lower() == lower:
            return value
    return None


def _text(raw: dict[str, Any], name: str) -> str | None:
    value = _field(raw, name)
    return None if value is None else str(value)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PermanentError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _required_text(raw: dict[str, Any], name: str, what: str) -> str:
    value = _text(raw, name)
    if not value:
        raise PermanentError(f"{what}: {name} is missing")
    return value


@dataclass(frozen=True)
class Subscription:
    """An Altinn Events subscription (events contract §1.3)."""

    id: int
    endpoint: str
    resource_filter: str | None
    subject_filter: str | None
    type_filter: str | None
    consumer: str | None
    created_by: str | None
    created: str | None
    validated: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> Subscription:
        raw = _object(value, "subscription")
        sub_id = _field(raw, "id")
        if isinstance(sub_id, bool) or not isinstance(sub_id, int):
            raise PermanentError(f"subscription: expected an integer id, got {sub_id!r}")
        return cls(
            id=sub_id,
            endpoint=_text(raw, "endPoint") or "",
            resource_filter=_text(raw, "resourceFilter"),
            subject_filter=_text(raw, "subjectFilter"),
            type_filter=_text(raw, "typeFilter"),
            consumer=_text(raw, "consumer"),
            created_by=_text(raw, "createdBy"),
            created=_text(raw, "created"),
            validated=_field(raw, "validated") is True,
            raw=raw,
        )


@dataclass(frozen=True)
class EventPage:
    """One page of the pull API: its items as sent (CloudEvents, unless the API is broken: catch-up checks each),
    and the `after` value of the `next` header (None if absent)."""

    events: list[Any]
    next_after: str | None


EXPIRED, PURGED = "Expired", "Purged"
"""The attachment statuses (`AttachmentStatusExt`) under which Altinn no longer serves the file (contract §7.2)."""


@dataclass(frozen=True)
class Attachment:
    id: str
    file_name: str | None
    display_name: str | None
    checksum: str | None
    data_type: str | None
    status: str | None
    expiration_time: str | None
    """When Altinn stops serving the file; None when the sender set no expiry."""

    @classmethod
    def from_json(cls, value: Any) -> Attachment:
        raw = _object(value, "attachment")
        return cls(
            id=_required_text(raw, "id", "attachment"),
            file_name=_text(raw, "fileName"),
            display_name=_text(raw, "displayName"),
            checksum=_text(raw, "checksum") or None,
            data_type=_text(raw, "dataType"),
            status=_text(raw, "status"),
            expiration_time=_text(raw, "expirationTime") or None,
        )

    def unavailable(self, at: datetime) -> str | None:
        """`Purged` or `Expired` when Altinn would refuse to serve the file at `at` (400 errorCode 2019 or 2020):
        by its status, or by an `expirationTime` that has passed; None while it can be downloaded."""
        status = (self.status or "").lower()
        if status == PURGED.lower():
            return PURGED
        if status == EXPIRED.lower():
            return EXPIRED
        try:
            expired = self.expiration_time is not None and parse_iso(self.expiration_time) <= at
        except ValueError:  # an odd timestamp: the download itself will tell
            expired = False
        return EXPIRED if expired else None


@dataclass(frozen=True)
class Correspondence:
    """A correspondence overview or details (correspondence contract §1.3).

    `has_content` is False when Altinn left the content out: a sender reading it after publishing gets `content:
    null` from the handler, which the API writes as an empty stand-in (language "no", empty texts, no attachments)
    (contract §7.3). `message_title` is then None and `attachments` empty: they say nothing about the content.
    """

    correspondence_id: str
    resource_id: str | None
    sender: str | None
    recipient: str | None
    status: str | None
    message_title: str | None
    attachments: tuple[Attachment, ...]
    has_content: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> Correspondence:
        raw = _object(value, "correspondence")
        correspondence_id = _required_text(raw, "correspondenceId", "correspondence")
        content = _field(raw, "content") or {}
        content = _object(content, "correspondence content")
        attachments = _field(content, "attachments") or []
        if not isinstance(attachments, list):
            raise PermanentError("correspondence: content.attachments must be a list")
        # Altinn refuses to send a correspondence without a title or a body (errorCodes 1020, 1021), so a content
        # with neither text nor attachments is the stand-in, not a message.
        has_content = bool(attachments) or any(
            _text(content, name) for name in ("messageTitle", "messageSummary", "messageBody")
        )
        return cls(
            correspondence_id=correspondence_id,
            resource_id=_text(raw, "resourceId"),
            sender=_text(raw, "sender"),
            recipient=_text(raw, "recipient"),
            status=_text(raw, "status"),
            message_title=_text(content, "messageTitle") if has_content else None,
            attachments=tuple(Attachment.from_json(a) for a in attachments),
            has_content=has_content,
            raw=raw,
        )
