"""`store`: the event into `correspondence_events` and, when `fetch_correspondence` ran before it, the
correspondence into `correspondences` (docs/store.md). Idempotent: an event run again is stored once."""

from __future__ import annotations

from handlers.api import Context, Event
from handlers.fetch_correspondence import is_correspondence_event
from receiver.altinn import Correspondence
from receiver.store.correspondences import CorrespondenceRow, EventRow
from receiver.timeutil import parse_iso, to_iso


def normalised_time(text: str) -> str:
    """Altinn's `time` (0-7 fractional digits, Z or offset) in the store's fixed-width UTC form; as is if odd."""
    try:
        return to_iso(parse_iso(text)) if text else ""
    except ValueError:
        return text


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
                )
            )
        row = EventRow(event.id, correspondence_id, event.resourceinstance, event.type, time, event.received_at)
        if not await ctx.store.record_event(row):
            ctx.log.info("event already stored (a repeated run)")
