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
import itertools
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from handlers import AttachmentFile, BaseHandler, Context, Event, OptionError, Permanent
from receiver.altinn import MAX_DOWNLOAD_NAME_BYTES, Attachment, AttachmentUnavailable
from receiver.timeutil import now

__all__ = ["AttachmentFile", "DownloadAttachments", "safe_file_name"]  # AttachmentFile: plugins imported it from here

MAX_EXTENSION = 20
"""Characters of an extension kept when a long name is cut (a longer "extension" is part of the name)."""
# Never in a name on some filesystem: path separators, Windows' reserved characters, and what a terminal or a file
# manager would act on or reorder (every control, format, surrogate, private-use or unassigned character, and line
# and paragraph separators, by Unicode category: ESC, U+202E RIGHT-TO-LEFT OVERRIDE, ...).
_RESERVED_CHARACTERS = frozenset('/\\:*?"<>|')
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Windows device names, which stay devices whatever extension follows (CON.txt, lpt1.tar.gz; COM¹ too).
_DEVICE = re.compile(r"CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]", re.IGNORECASE)


def _unsafe(char: str) -> bool:
    return char in _RESERVED_CHARACTERS or unicodedata.category(char) in _UNSAFE_CATEGORIES


def safe_file_name(name: str | None, fallback: str) -> str:
    """A single path component that is safe and readable on any filesystem: no directories; each run of reserved,
    control, format (bidi overrides) or other unsafe characters as one `_`; no leading dots or spaces, no trailing
    ones (Windows drops them); a Windows device name (`CON.txt`) prefixed with `_`; at most
    MAX_DOWNLOAD_NAME_BYTES of UTF-8 (room for the download's `.part`), cut on a character boundary with the
    extension kept; `fallback` when nothing is left. Unique because each attachment has a folder of its own."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join("_" if unsafe else "".join(run) for unsafe, run in itertools.groupby(text, _unsafe))
    text = text.strip().lstrip(".").rstrip(". ")
    if _DEVICE.fullmatch(text.split(".", 1)[0].rstrip()):
        text = "_" + text
    return _cut(text, MAX_DOWNLOAD_NAME_BYTES) or fallback


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` bytes of UTF-8: the stem cut on a character boundary, a short extension kept."""
    if len(text.encode()) <= limit:
        return text
    stem, dot, extension = text.rpartition(".")
    if not (dot and stem and len(extension) <= MAX_EXTENSION):
        stem, extension = text, ""
    tail = f".{extension}" if extension else ""
    stem = stem.encode()[: limit - len(tail.encode())].decode("utf-8", errors="ignore").rstrip(". ")
    return stem + tail


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
