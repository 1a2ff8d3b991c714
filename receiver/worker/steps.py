"""Running one handler: its `Context`, and its deadline. The dispatcher runs every step of a pipeline with
`run_step`, and `handlers.testing` runs a plugin's handler the same way.

A step runs as a task of its own, and the run waits for that task with `asyncio.wait`, never `asyncio.wait_for`:
on Python 3.11 `wait_for` can swallow the cancellation of the run (a lost lease, a shutdown) when the step ends at
the same moment, and takes a step that swallows its own cancellation at the deadline for a success. Here a step
that runs over is cancelled and counts as timed out whatever it then does, and a cancelled run cancels its step
and is cancelled itself. A step that keeps running after it was cancelled (it catches `CancelledError` and goes
on) is given `CANCEL_GRACE` seconds to stop; then it is left behind with an error line, and the event's outcome is
recorded all the same. (A step that blocks the event loop cannot be cancelled at all: nothing runs until it
returns. Handlers put blocking work in `asyncio.to_thread`.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, MutableMapping
from typing import Any

from handlers.api import Context, Event, Handler, RetryLater, Store
from receiver.altinn import AltinnClients
from receiver.durations import format_duration
from receiver.observability.metrics import Metrics

log = logging.getLogger("receiver.dispatch")

CANCEL_GRACE = 2.0
"""Seconds a cancelled step gets to finish its cleanup before it is left behind."""

_left_behind: set[asyncio.Task[None]] = set()
"""Steps that did not stop when cancelled: referenced until they end, so they are not garbage collected."""


class EventLog(logging.LoggerAdapter):
    """A logger bound to one event and handler; a call's own `extra` adds to the bound fields."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class StepTimeout(RetryLater):
    """A step ran over its `step_timeout` and was cancelled: the event is retried."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"timed out after {duration_text(timeout)}")
        self.timeout = timeout


def duration_text(seconds: float) -> str:
    """A duration as the config writes one: "5m", "30s", and below a second "200ms" (not "0s")."""
    return format_duration(seconds) if seconds >= 1 or seconds <= 0 else f"{round(seconds * 1000)}ms"


def step_context(
    step_name: str,
    options: Any,
    *,
    event: Event | None,
    store: Store,
    results: dict[str, Any],
    altinn: AltinnClients | None,
    metrics: Metrics,
    backoff_cap: float,
) -> Context[Any]:
    """A step's `Context`: its log lines name the handler and, for a run, the event (none for `start`)."""
    bound: dict[str, Any] = {"handler": step_name}
    if event is not None:
        bound = {"event_id": event.id, "event_type": event.type, "attempt": event.attempt, **bound}
    return Context(
        altinn=altinn,
        store=store,
        results=results,
        log=EventLog(logging.getLogger(f"handlers.{step_name}"), bound),
        options=options,
        metrics=metrics,
        name=step_name,
        backoff_cap=backoff_cap,
    )


async def run_step(handler: Handler, event: Event, ctx: Context[Any], timeout: float) -> None:
    """`handler.handle(event, ctx)` within `timeout` seconds: what it raises, or `StepTimeout` when it runs over."""
    await within(handler.handle(event, ctx), timeout, f"{handler.name}:{event.id}")


async def within(work: Coroutine[Any, Any, None], timeout: float, name: str) -> None:
    """Run `work` as a task of its own for at most `timeout` seconds (module docstring: why not `wait_for`)."""
    task = asyncio.create_task(work, name=name)
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        await _stop(task, name)
        raise
    if task.done():
        return task.result()
    await _stop(task, name)
    raise StepTimeout(timeout)


async def _stop(task: asyncio.Task[None], name: str) -> None:
    """Cancel the step and give it `CANCEL_GRACE` seconds to end; what it ends with no longer matters."""
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_GRACE)
    if task.done():
        _ = task.cancelled() or task.exception()  # retrieved: an error in its cleanup is not logged as unhandled
        return
    log.error(
        "a handler did not stop when cancelled: it is left running, and its event's outcome is recorded",
        extra={"step": name, "grace_s": CANCEL_GRACE},
    )
    _left_behind.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[None]) -> None:
    _left_behind.discard(task)
    if not task.cancelled():
        task.exception()
