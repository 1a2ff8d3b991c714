"""The Altinn Correspondence API (correspondence contract §1): read correspondences, download attachments,
mark as read, confirm, list ids, and send (initialize) for the demo and tests.

Ids go into the path only after they parse as UUIDs: they come from events, which can be forged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from receiver.altinn.errors import PermanentError
from receiver.altinn.http import PlatformSession, json_body, transport_errors
from receiver.altinn.models import EXPIRED, PURGED, Correspondence
from receiver.altinn.partfile import part_file, part_path
from receiver.config import ConfigError
from receiver.scopes import WRITE_SCOPE

CORRESPONDENCE_PATH = "/correspondence/api/v1/correspondence"
RESOURCE_PREFIX = "urn:altinn:resource:"
ROLES = ("Recipient", "Sender", "RecipientAndSender")
# Application/Errors.cs: a download refused because the attachment is gone (correspondence contract §7.2).
UNAVAILABLE_ERRORS = {"2019": PURGED, "2020": EXPIRED}


class AttachmentUnavailable(PermanentError):
    """Altinn no longer serves the attachment: `attachment_status` is `Expired` (400 errorCode 2020) or `Purged`
    (2019). The correspondence itself is still there."""

    def __init__(self, error: PermanentError, attachment_status: str) -> None:
        super().__init__(error.message, status=error.status, title=error.title, error_code=error.error_code)
        self.attachment_status = attachment_status


def checked_id(value: str, what: str) -> str:
    """`value` as a canonical UUID, or PermanentError: nothing else is put into a request path."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise PermanentError(f"{what} {value!r} is not a UUID") from None


def form_fields(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON body as ASP.NET form fields: `correspondence.content.messageTitle`, `recipients[0]`, ..."""
    if isinstance(value, dict):
        return [f for key, item in value.items() for f in form_fields(item, f"{prefix}.{key}" if prefix else key)]
    if isinstance(value, list | tuple):
        return [f for i, item in enumerate(value) for f in form_fields(item, f"{prefix}[{i}]")]
    if value is None:
        return []
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


class CorrespondenceApi:
    """`session` carries the role's own reads and actions (a recipient's read-only token, or a service owner's
    sender token); `sender` carries initialize and upload, and is None when the client holds no write scope."""

    def __init__(self, session: PlatformSession, *, sender: PlatformSession | None = None) -> None:
        self.session = session
        self.sender = sender

    def _sender(self) -> PlatformSession:
        if self.sender is None:
            raise ConfigError("maskinporten.scopes", f"lacks {WRITE_SCOPE}: sending needs the sender's scope")
        return self.sender

    def _path(self, correspondence_id: str, suffix: str = "") -> str:
        return f"{CORRESPONDENCE_PATH}/{checked_id(correspondence_id, 'correspondence id')}{suffix}"

    async def overview(self, correspondence_id: str) -> Correspondence:
        """GET the overview; as recipient this sets the status Fetched."""
        response = await self.session.request(
            "GET", self._path(correspondence_id), what=f"reading correspondence {correspondence_id}"
        )
        return Correspondence.from_json(json_body(response, "correspondence overview"))

    async def details(self, correspondence_id: str) -> Correspondence:
        """GET the details (overview plus statusHistory and notifications); as recipient this sets Fetched."""
        response = await self.session.request(
            "GET", self._path(correspondence_id, "/details"), what=f"reading correspondence {correspondence_id}"
        )
        return Correspondence.from_json(json_body(response, "correspondence details"))

    async def download_attachment(
        self,
        correspondence_id: str,
        attachment_id: str,
        dest: Path,
        *,
        max_bytes: int | None = None,
        checksum: str | None = None,
    ) -> int:
        """Stream an attachment to `dest` (via its `.part` beside it, renamed when complete: see partfile.py) and
        return its size. `dest`'s name may have up to MAX_DOWNLOAD_NAME_BYTES. AttachmentUnavailable if Altinn no longer
        serves it (expired or purged); PermanentError if it is larger than `max_bytes` or its MD5 differs from
        `checksum` (hex, any case); `dest` is then left untouched. TransientError if another process is downloading
        it to the same `dest`."""
        what = f"downloading attachment {attachment_id} of correspondence {correspondence_id}"
        path = self._path(correspondence_id, f"/attachment/{checked_id(attachment_id, 'attachment id')}/download")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with part_file(dest, what) as out:
            async with self._download(path, what) as response:
                declared = response.headers.get("content-length", "")
                if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(what, max_bytes)
                written, digest = await _write_body(response, out, what, max_bytes)
            if checksum and digest.lower() != checksum.strip().lower():
                raise PermanentError(f"{what}: MD5 {digest} does not match the attachment's checksum {checksum}")
            os.replace(part_path(dest), dest)
        return written

    @contextlib.asynccontextmanager
    async def _download(self, path: str, what: str) -> AsyncIterator[httpx.Response]:
        """The download's 2xx response; Altinn's refusal of an expired or purged attachment as AttachmentUnavailable
        (errors of reading the body pass through)."""
        try:
            async with self.session.stream("GET", path, what=what) as response:
                yield response
        except PermanentError as exc:
            gone = UNAVAILABLE_ERRORS.get(str(exc.error_code)) if exc.status == 400 else None
            if gone is None:
                raise
            raise AttachmentUnavailable(exc, gone) from exc

    async def mark_as_read(self, correspondence_id: str) -> None:
        await self.session.request(
            "POST", self._path(correspondence_id, "/markasread"), what=f"marking {correspondence_id} as read"
        )

    async def confirm(self, correspondence_id: str) -> None:
        await self.session.request(
            "POST", self._path(correspondence_id, "/confirm"), what=f"confirming {correspondence_id}"
        )

    async def list_ids(
        self, resource_id: str, *, role: str = "RecipientAndSender", status: str | None = None
    ) -> list[str]:
        """Correspondence ids for a resource (`my-resource` or `urn:altinn:resource:my-resource`); at most 1000."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        params = {"resourceId": resource_id.removeprefix(RESOURCE_PREFIX), "role": role}
        if status:
            params["status"] = status
        response = await self.session.request(
            "GET", CORRESPONDENCE_PATH, what=f"listing correspondences of {resource_id}", params=params
        )
        body = json_body(response, "correspondence list")
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise PermanentError('listing correspondences: expected {"ids": [...]}')
        return [str(i) for i in ids]

    async def initialize(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a correspondence (InitializeCorrespondencesExt) as JSON; returns the response body."""
        response = await self._sender().request("POST", CORRESPONDENCE_PATH, what="sending a correspondence", json=body)
        return _object(json_body(response, "initialize response"))

    async def initialize_with_files(self, body: dict[str, Any], files: Sequence[Path]) -> dict[str, Any]:
        """POST a correspondence with its attachments as multipart/form-data to `/upload`. Each file goes in a part
        named `attachments` under its own file name, which must be a `fileName` in the body's attachments."""
        sender = self._sender()
        with contextlib.ExitStack() as stack:
            handles = [(file.name, stack.enter_context(file.open("rb"))) for file in files]
            response = await sender.request(
                "POST",
                f"{CORRESPONDENCE_PATH}/upload",
                what="sending a correspondence with attachments",
                data=dict_of_lists(form_fields(body)),
                files=[("attachments", (name, handle)) for name, handle in handles],
            )
        return _object(json_body(response, "initialize response"))


def dict_of_lists(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx takes repeated form fields as {name: [values]}."""
    out: dict[str, list[str]] = {}
    for name, value in fields:
        out.setdefault(name, []).append(value)
    return out


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PermanentError("sending a correspondence: expected a JSON object in the answer")
    return value


def _too_large(what: str, cap: int) -> PermanentError:
    return PermanentError(f"{what}: the attachment is larger than the cap of {cap} bytes")


async def _write_body(response: httpx.Response, out: BinaryIO, what: str, max_bytes: int | None) -> tuple[int, str]:
    md5 = hashlib.md5(usedforsecurity=False)
    written = 0
    with transport_errors(what):
        async for chunk in response.aiter_bytes():
            written += len(chunk)
            if max_bytes is not None and written > max_bytes:
                raise _too_large(what, max_bytes)
            md5.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return written, md5.hexdigest()
