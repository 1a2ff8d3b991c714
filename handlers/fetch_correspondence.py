"""`fetch_correspondence`: the correspondence an event is about, from the Correspondence API, into
`ctx.correspondence` (a `receiver.altinn.Correspondence`; `.raw` is Altinn's JSON), also known as
`ctx.results["correspondence"]`.

Only `no.altinn.correspondence.correspondence*` events name a correspondence (their `resourceinstance`); for
attachment and notification events it is an attachment or notification-order id, so they pass through untouched.
A 404 (errorCode 1001) right after publishing can be Altinn catching up with itself: it is retried
`not_found_retries` times before the event is given up. A `correspondencepurged` event's correspondence may be
gone: a 404 there is expected and the pipeline goes on without details.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from handlers import BaseHandler, Context, Duration, Event, OptionError, Permanent, RetryLater
from receiver.altinn import PermanentError

PURGED = "no.altinn.correspondence.correspondencepurged"
NOT_FOUND = 1001


def is_correspondence_event(event: Event) -> bool:
    """Whether `resourceinstance` is a correspondence id: `event.is_correspondence_event` (kept for plugins that
    imported it from here)."""
    return event.is_correspondence_event


def is_not_found(error: PermanentError) -> bool:
    return error.status == 404 or str(error.error_code) == str(NOT_FOUND)


class FetchCorrespondence(BaseHandler):
    name = "fetch_correspondence"
    uses_altinn = True

    @dataclass(frozen=True)
    class Options:
        view: Literal["details", "overview"] = "details"
        """`details` adds the status history and notifications; both set the recipient's status Fetched."""
        not_found_retries: int = 3
        timeout: Duration = 30.0
        """Give up waiting for Altinn's answer after this long (and retry later)."""

        def __post_init__(self) -> None:
            if self.not_found_retries < 0:
                raise OptionError("not_found_retries", f"must be 0 or more, got {self.not_found_retries}")
            if self.timeout <= 0:
                raise OptionError("timeout", "must be longer than zero")

    async def handle(self, event: Event, ctx: Context[FetchCorrespondence.Options]) -> None:
        if not event.is_correspondence_event:
            ctx.log.info(
                "not a correspondence event: its resourceinstance is not a correspondence id, nothing to fetch",
                extra={"resourceinstance": event.resourceinstance},
            )
            return
        assert ctx.altinn is not None
        api = ctx.altinn.correspondence
        read = api.details if ctx.options.view == "details" else api.overview
        try:
            correspondence = await asyncio.wait_for(read(event.resourceinstance), ctx.options.timeout)
        except TimeoutError:
            raise RetryLater(f"no answer from the Correspondence API within {ctx.options.timeout:g}s") from None
        except PermanentError as exc:
            if not is_not_found(exc):
                raise
            if event.type == PURGED:
                ctx.log.info("the purged correspondence is gone (404): storing the event without details")
                return
            if event.attempt <= ctx.options.not_found_retries:
                raise RetryLater(f"correspondence not found yet (404, attempt {event.attempt})") from exc
            raise Permanent(
                f"correspondence {event.resourceinstance} not found (404) after {event.attempt} tries"
            ) from exc
        ctx.correspondence = correspondence
