"""`log`: one summary line per event (what it is about and what the handlers before it found)."""

from __future__ import annotations

from typing import Any

from handlers import BaseHandler, Context, Event


class Log(BaseHandler):
    name = "log"

    async def handle(self, event: Event, ctx: Context[None]) -> None:
        fields: dict[str, Any] = {
            "resource": event.resource,
            "resourceinstance": event.resourceinstance,
            "subject": event.subject,
            "time": event.time,
            "channel": event.channel,
            "attempt": event.attempt,
        }
        fetched = ctx.correspondence
        if fetched is not None:
            fields.update(correspondence_status=fetched.status, attachments=len(fetched.attachments))
        if ctx.attachments is not None:
            fields["downloaded"] = sum(1 for file in ctx.attachments.values() if file.path is not None)
        ctx.log.info(f"event {event.type}", extra=fields)
