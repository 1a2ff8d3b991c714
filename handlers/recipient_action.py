"""The recipient's actions on a correspondence (`mark_as_read`, `confirm`): one POST each, after a fetch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers import BaseHandler, Context, Event, Permanent
from receiver.altinn import CorrespondenceApi, PermanentError

Operation = Callable[[CorrespondenceApi, str], Awaitable[None]]


class RecipientAction(BaseHandler):
    """A recipient's POST on a correspondence: `operation` is the Correspondence API's call, `already` Altinn's
    errorCode for "done before", `unfetched` its errorCode for "fetch it first" (correspondence contract §1.2)."""

    uses_altinn = True

    def __init__(self, name: str, operation: Operation, *, already: int, unfetched: int) -> None:
        self.name = name
        self.operation = operation
        self.already = already
        self.unfetched = unfetched

    async def handle(self, event: Event, ctx: Context[None]) -> None:
        if not event.is_correspondence_event:
            ctx.log.info(f"not a correspondence event: nothing to {self.name}")
            return
        assert ctx.altinn is not None
        try:
            await self.operation(ctx.altinn.correspondence, event.resourceinstance)
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
