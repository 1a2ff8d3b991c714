"""`download_attachments`: each attachment of the fetched correspondence, streamed to
`{dir}/{correspondenceId}/{attachmentId}/{fileName}`. Needs `fetch_correspondence` before it in the pipeline and,
as a recipient, the scope `altinn:correspondence.read`.

A file is written beside its final name and renamed only when complete and matching its MD5 checksum (when Altinn
gives one), so a file under its final name is complete: it is skipped on a later run (checked against the
checksum). What was done with each attachment (`handlers.AttachmentFile`) is `ctx.attachments`, by attachment id,
for `store` (also `ctx.results["downloads"]`, and the paths on disk in `ctx.results["attachments"]`).

An attachment Altinn no longer serves (contract §7.2: status `Expired` or `Purged`, an `expirationTime` passed, or
a download refused with 400 errorCode 2020 or 2019) is not downloaded and does not fail the event: it is logged as
a warning and counted in `altinn_receiver_attachments_unavailable_total{reason}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from handlers import AttachmentFile, BaseHandler, Context, Event, OptionError, Permanent
from receiver.altinn import Attachment, AttachmentUnavailable
from receiver.timeutil import now

__all__ = ["AttachmentFile", "DownloadAttachments", "safe_file_name"]  # AttachmentFile: plugins imported it from here

MAX_NAME = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def safe_file_name(name: str | None, fallback: str) -> str:
    """A single path component that is safe on any filesystem: no directories, control characters or leading
    dots; at most MAX_NAME characters (keeping the extension); `fallback` when nothing is left."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).strip().lstrip(".").strip()
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        keep = ext[:20] if dot and stem else ""
        text = text[: MAX_NAME - len(keep) - 1] + "." + keep if keep else text[:MAX_NAME]
    return text or fallback


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Permanent(f"{what} {value!r} is not a UUID") from None


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def already_complete(path: Path, checksum: str | None) -> bool:
    if not path.is_file():
        return False
    if not checksum:
        return True
    return (await asyncio.to_thread(md5_of, path)) == checksum.strip().lower()


class DownloadAttachments(BaseHandler):
    name = "download_attachments"
    uses_altinn = True

    @dataclass(frozen=True)
    class Options:
        dir: Path = Path("attachments")
        """Relative to the config file's folder."""
        max_bytes: int | None = None
        """Refuse (permanently) an attachment larger than this."""

        def __post_init__(self) -> None:
            if self.max_bytes is not None and self.max_bytes < 1:
                raise OptionError("max_bytes", f"must be at least 1, got {self.max_bytes}")

    async def handle(self, event: Event, ctx: Context[DownloadAttachments.Options]) -> None:
        correspondence = ctx.correspondence
        if correspondence is None:
            ctx.log.info("no correspondence fetched for this event: nothing to download")
            return
        correspondence_id = _uuid(correspondence.correspondence_id, "correspondence id")
        downloads: dict[str, AttachmentFile] = {}
        for attachment in correspondence.attachments:
            path = self.destination(ctx.options.dir, correspondence_id, attachment)
            outcome = await self.download(ctx, correspondence_id, attachment, path)
            downloads[attachment.id] = outcome
            if outcome.unavailable is not None:
                reason = outcome.unavailable.lower()
                ctx.log.warning(
                    f"attachment not downloaded: Altinn no longer serves it ({reason})",
                    extra={"attachment_id": attachment.id, "reason": reason},
                )
                ctx.metrics.attachments_unavailable.labels(reason).inc()
        ctx.attachments = downloads

    async def download(
        self, ctx: Context[DownloadAttachments.Options], correspondence_id: str, attachment: Attachment, path: Path
    ) -> AttachmentFile:
        """The file at `path`: kept if already complete, else downloaded unless Altinn no longer serves it."""
        if await already_complete(path, attachment.checksum):
            ctx.log.info("attachment already downloaded", extra={"attachment_id": attachment.id})
            return AttachmentFile(path, path.stat().st_size)
        gone = attachment.unavailable(now())
        if gone is not None:
            return AttachmentFile(unavailable=gone)
        assert ctx.altinn is not None
        try:
            size = await ctx.altinn.correspondence.download_attachment(
                correspondence_id, attachment.id, path, max_bytes=ctx.options.max_bytes,
                checksum=attachment.checksum,
            )  # fmt: skip
        except AttachmentUnavailable as exc:  # it expired or was purged after the correspondence was fetched
            return AttachmentFile(unavailable=exc.attachment_status)
        ctx.log.info("attachment downloaded", extra={"attachment_id": attachment.id, "bytes": size})
        return AttachmentFile(path, size)

    @staticmethod
    def destination(root: Path, correspondence_id: str, attachment: Attachment) -> Path:
        attachment_id = _uuid(attachment.id, "attachment id")
        return root / correspondence_id / attachment_id / safe_file_name(attachment.file_name, attachment_id)
