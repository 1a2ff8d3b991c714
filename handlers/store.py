"""`store`: the event into `correspondence_events` and, when `fetch_correspondence` ran before it, the
correspondence into `correspondences` and its attachments into `correspondence_attachments`, with what
`download_attachments` did with each (docs/store.md). An `attachmentexpired` event marks its attachment `Expired`
wherever it is stored. Idempotent: an event run again is stored once."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.api import Context, Event
from handlers.download_attachments import AttachmentFile
from handlers.fetch_correspondence import is_correspondence_event
from receiver.altinn import Correspondence
from receiver.store.correspondences import AttachmentRow, CorrespondenceRow, EventRow
from receiver.timeutil import parse_iso, to_iso

ATTACHMENT_EXPIRED = "no.altinn.correspondence.attachmentexpired"


def normalised_time(text: str) -> str:
    """Altinn's `time` (0-7 fractional digits, Z or offset) in the store's fixed-width UTC form; as is if odd."""
    try:
        return to_iso(parse_iso(text)) if text else ""
    except ValueError:
        return text


def attachment_rows(fetched: Correspondence, downloads: Mapping[str, AttachmentFile]) -> list[AttachmentRow]:
    """The fetched attachments as rows: Altinn's status, unless the download learnt that it has since expired or
    been purged; the file's path and size when `download_attachments` has it on disk."""
    rows = []
    for attachment in fetched.attachments:
        done = downloads.get(attachment.id, AttachmentFile())
        rows.append(
            AttachmentRow(
                correspondence_id=fetched.correspondence_id,
                attachment_id=attachment.id,
                file_name=attachment.file_name or "",
                checksum=attachment.checksum or "",
                status=done.unavailable or attachment.status or "",
                expiration_time=normalised_time(attachment.expiration_time or ""),
                path=str(done.path) if done.path is not None else "",
                size=done.size,
            )
        )
    return rows


class Store:
    name = "store"

    async def handle(self, event: Event, ctx: Context) -> None:
        fetched: Correspondence | None = ctx.results.get("correspondence")
        if fetched is not None:
            correspondence_id = fetched.correspondence_id
        else:
            correspondence_id = event.resourceinstance if is_correspondence_event(event) else ""
        time = normalised_time(event.time)
        if fetched is not None:
            await ctx.store.upsert_correspondence(
                CorrespondenceRow(
                    correspondence_id=fetched.correspondence_id,
                    resource_id=fetched.resource_id or "",
                    sender=fetched.sender or "",
                    recipient=fetched.recipient or "",
                    status=fetched.status or "",
                    message_title=fetched.message_title or "",
                    details=fetched.raw,
                    event_at=time or event.received_at,
                    has_content=fetched.has_content,
                )
            )
            await ctx.store.upsert_attachments(attachment_rows(fetched, ctx.results.get("downloads", {})))
        if event.type == ATTACHMENT_EXPIRED:
            expired_in = await ctx.store.expire_attachment(event.resourceinstance)
            ctx.log.info("attachment expired", extra={"attachment_id": event.resourceinstance,
                                                      "correspondences": expired_in})  # fmt: skip
        row = EventRow(event.id, correspondence_id, event.resourceinstance, event.type, time, event.received_at)
        if not await ctx.store.record_event(row):
            ctx.log.info("event already stored (a repeated run)")
