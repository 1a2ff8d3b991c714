"""A handler for the graceful-shutdown test, loaded by dotted path (`tests.shutdown_handlers:Sleeper`) from a
`serve` subprocess: it works for `seconds`, so one can finish within `shutdown_timeout` and another cannot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from handlers import Context, Duration, Event


class Sleeper:
    name = "sleeper"

    @dataclass(frozen=True)
    class Options:
        seconds: Duration

    async def handle(self, event: Event, ctx: Context) -> None:
        await asyncio.sleep(ctx.options.seconds)
