"""Plugin handlers for the dispatcher tests, loaded by dotted path (`tests.dispatch_plugins:Recorder`). `Recorder`
is written as plugins were before `BaseHandler` (a `name` and `handle` only); the others subclass it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers import BaseHandler, Context, Duration, Event, RetryLater


class Recorder:
    """Works for `seconds`, then appends one JSON line saying which event ran, in which process, and when it started
    and ended."""

    name = "recorder"

    @dataclass(frozen=True)
    class Options:
        path: Path
        seconds: Duration = 0.0

    async def handle(self, event: Event, ctx: Context) -> None:  # an unparameterised Context, as plugins wrote it
        started = time.monotonic()
        await asyncio.sleep(ctx.options.seconds)
        line = {"id": event.id, "instance": event.resourceinstance, "start": started, "end": time.monotonic(),
                "pid": os.getpid()}  # fmt: skip
        append(ctx.options.path, line)


@dataclass(frozen=True)
class PathOptions:
    path: Path
    """Where the handler appends one JSON line per thing it does."""


class Hang(BaseHandler):
    """Hangs on an event's first run until it is cancelled (recorded as "cancelled"), and works on the next
    (recorded as "done"). With `swallow`, it catches its cancellation and returns as if it had worked."""

    name = "hang"

    @dataclass(frozen=True)
    class Options:
        path: Path
        swallow: bool = False

    async def handle(self, event: Event, ctx: Context[Hang.Options]) -> None:
        if event.attempt > 1:
            append(ctx.options.path, {"id": event.id, "run": "done", "attempt": event.attempt})
            return
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            append(ctx.options.path, {"id": event.id, "run": "cancelled", "attempt": event.attempt})
            if not ctx.options.swallow:
                raise


class Stubborn(BaseHandler):
    """Catches its first cancellation and goes on waiting (until cancelled again): a step that does not stop."""

    name = "stubborn"

    async def handle(self, event: Event, ctx: Context[None]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()


class Pause(BaseHandler):
    """Pauses each event `times` times with `RetryLater(attempt=False)`, then works; records every run's attempt."""

    name = "pause"

    @dataclass(frozen=True)
    class Options:
        path: Path
        times: int = 2

    async def handle(self, event: Event, ctx: Context[Pause.Options]) -> None:
        runs = len([line for line in recorded(ctx.options.path) if line["id"] == event.id])
        append(ctx.options.path, {"id": event.id, "attempt": event.attempt})
        if runs < ctx.options.times:
            raise RetryLater("downstream maintenance window", after=0.01, attempt=False)


class Lifecycle(BaseHandler):
    """Records its `start` (with the store's dialect and whether its context has an event), each `handle`, and its
    `aclose`."""

    name = "lifecycle"
    Options = PathOptions

    def __init__(self) -> None:
        self.path: Path | None = None

    async def start(self, ctx: Context[PathOptions]) -> None:
        self.path = ctx.options.path
        append(self.path, {"call": "start", "dialect": ctx.store.dialect, "correspondence": ctx.correspondence})

    async def handle(self, event: Event, ctx: Context[PathOptions]) -> None:
        append(ctx.options.path, {"call": "handle", "id": event.id})

    async def aclose(self) -> None:
        assert self.path is not None, "aclose without start"
        append(self.path, {"call": "aclose"})


class FailingStart(BaseHandler):
    """Its `start` fails: the dispatcher must not start, and close what it started before it."""

    name = "failing_start"

    async def start(self, ctx: Context[None]) -> None:
        raise RuntimeError("the case system is not reachable")

    async def handle(self, event: Event, ctx: Context[None]) -> None:
        raise AssertionError("a handler whose start failed was run")


def append(path: Path, line: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def recorded(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


class PlainOptions(BaseHandler):
    """Declares `Options` that are not a dataclass: refused at startup."""

    name = "plain_options"

    class Options:
        path: Path

    async def handle(self, event: Event, ctx: Context[None]) -> None: ...


class SyncStart:
    """A `start` that is not `async def`: refused at startup."""

    name = "sync_start"

    def start(self, ctx: Context[None]) -> None: ...

    async def handle(self, event: Event, ctx: Context[None]) -> None: ...


class Scribbler(BaseHandler):
    """On an event's first run, writes a row to `scribbler_rows` through `ctx.store` every `every` seconds until it is
    cancelled; on later runs, one row and done. Each row names the process that wrote it, and every exception a write
    raises is appended to `path`: a run whose lease was lost must have its writes refused."""

    name = "scribbler"

    @dataclass(frozen=True)
    class Options:
        path: Path
        every: Duration = 0.2

    async def start(self, ctx: Context[Scribbler.Options]) -> None:
        numbered = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}
        key = numbered[ctx.store.dialect]
        await ctx.store.execute(f"CREATE TABLE IF NOT EXISTS scribbler_rows (n {key}, event_id TEXT, pid INTEGER)")

    async def handle(self, event: Event, ctx: Context[Scribbler.Options]) -> None:
        while True:
            try:
                await ctx.store.execute(
                    "INSERT INTO scribbler_rows (event_id, pid) VALUES (:id, :pid)",
                    {"id": event.id, "pid": os.getpid()},
                )
            except Exception as exc:
                append(ctx.options.path, {"id": event.id, "pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}"})
                raise
            if event.attempt > 1:
                return
            await asyncio.sleep(ctx.options.every)


class Shouter(BaseHandler):
    """Logs one line of `size` characters per event: longer than a pipe takes in one write."""

    name = "shouter"

    @dataclass(frozen=True)
    class Options:
        size: int = 200_000

    async def handle(self, event: Event, ctx: Context[Shouter.Options]) -> None:
        ctx.log.info("shouting", extra={"text": event.id * (ctx.options.size // len(event.id))})
