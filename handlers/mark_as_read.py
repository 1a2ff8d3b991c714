"""`mark_as_read`: the recipient marks the correspondence as read (opt-in). Altinn requires that it was fetched
first, so put `fetch_correspondence` before it; a correspondence already read counts as done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers.api import Context, Event, Permanent
from handlers.fetch_correspondence import is_correspondence_event
from receiver.altinn import PermanentError


class RecipientAction:
    """A recipient's POST on a correspondence: `already` is Altinn's errorCode for "done before", `unfetched` its
    errorCode for "fetch it first" (correspondence contract §1.2)."""

    name = ""
    uses_altinn = True
    already = 0
    unfetched = 0

    def action(self, ctx: Context) -> Callable[[str], Awaitable[None]]:
        raise NotImplementedError

    async def handle(self, event: Event, ctx: Context) -> None:
        if not is_correspondence_event(event):
            ctx.log.info(f"not a correspondence event: nothing to {self.name}")
            return
        try:
            await self.action(ctx)(event.resourceinstance)
        except PermanentError as exc:
            code = str(exc.error_code)
            if code == str(self.already):
                ctx.log.info(f"{self.name}: already done (errorCode {code})")
                return
            if code == str(self.unfetched):
                raise Permanent(
                    f"Altinn requires the correspondence to be fetched before {self.name}: put fetch_correspondence "
                    f"before {self.name} in the pipeline"
                ) from exc
            raise
        ctx.log.info(f"{self.name}: done")


class MarkAsRead(RecipientAction):
    name = "mark_as_read"
    already = 1040
    unfetched = 1024

    def action(self, ctx: Context) -> Callable[[str], Awaitable[None]]:
        assert ctx.altinn is not None
        return ctx.altinn.correspondence.mark_as_read
