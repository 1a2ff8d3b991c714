"""Plugin handlers for the dispatcher tests, loaded by dotted path (`tests.dispatch_plugins:Recorder`)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers import Context, Duration, Event


class Recorder:
    """Works for `seconds`, then appends one JSON line saying which event ran, and when it started and ended."""

    name = "recorder"

    @dataclass(frozen=True)
    class Options:
        path: Path
        seconds: Duration = 0.0

    async def handle(self, event: Event, ctx: Context) -> None:
        started = time.monotonic()
        await asyncio.sleep(ctx.options.seconds)
        line = {"id": event.id, "instance": event.resourceinstance, "start": started, "end": time.monotonic()}
        with ctx.options.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def recorded(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
