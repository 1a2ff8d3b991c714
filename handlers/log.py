"""`log`: one summary line per event (what it is about and what the handlers before it found)."""

from __future__ import annotations

from typing import Any

from handlers.api import Context, Event
from receiver.altinn import Correspondence


class Log:
    name = "log"

    async def handle(self, event: Event, ctx: Context) -> None:
        fields: dict[str, Any] = {
            "resource": event.resource,
            "resourceinstance": event.resourceinstance,
            "subject": event.subject,
            "time": event.time,
            "channel": event.channel,
            "attempt": event.attempt,
        }
        fetched: Correspondence | None = ctx.results.get("correspondence")
        if fetched is not None:
            fields.update(correspondence_status=fetched.status, attachments=len(fetched.attachments))
        if "attachments" in ctx.results:
            fields["downloaded"] = len(ctx.results["attachments"])
        ctx.log.info(f"event {event.type}", extra=fields)
