"""The dispatcher: claim events from the inbox, run each one's pipeline of handlers, record how it ended.

What it does for users — order per `resourceinstance`, claiming ahead, retries, leases, shutdown — is said once, in
docs/handlers.md ("The dispatcher"). Here, how the code reads, top to bottom as one event travels: `start` opens the
dispatcher's own store connection, runs each handler's `start` and then `_claim_loop` (keeps the slots and the
ready claims full, sleeps until a commit, a finished run or `poll_interval`); `_run` runs one event and records what
`worker/outcomes.py` decides; `_run_pipeline` runs the handlers in order, each within its deadline
(`worker/steps.py`), over one `HandlerStore` per run; `_keep_leases` renews every claim in one statement; `stop`
gives back what did not finish and closes the handlers.

While traces are on, each run is a `dispatch` span linked to the span the event arrived in (its traceparent is stored
with it), with a child span per handler step; the Altinn calls a handler makes are children of its step's span.

The database is the dispatcher's own, opened for background work (on SQLite `synchronous=NORMAL`, store/db.py says
what that keeps): its claims, the `store` handler's rows and the outcomes are single short statements that do not
wait for an fsync each, so they hold SQLite's write lock, which the webhook's writer needs for every
acknowledgement, only for as long as the statement runs. An outcome lost to a power cut means the event runs again.
Besides its own wake-ups (a commit of this process, a finished run) it listens for other processes' commits where
the backend can tell (`Backend.listen`), and otherwise polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from handlers.api import Context, Event
from receiver.config import Config, DispatchConfig
from receiver.observability import tracing
from receiver.observability.logs import log_context
from receiver.store import queue
from receiver.store.errors import StoreError
from receiver.store.handler_store import HandlerStore
from receiver.store.interface import Database
from receiver.store.records import InboxRecord
from receiver.store.traces import traceparent_of
from receiver.worker.outcomes import OUTCOMES, STEP_OUTCOMES, Outcome, decide, failure, short, step_outcome
from receiver.worker.pipelines import Pipeline, Pipelines, Step, load_pipelines
from receiver.worker.steps import StepTimeout, run_step, step_context, within

if TYPE_CHECKING:
    from receiver.runtime import Runtime

log = logging.getLogger("receiver.dispatch")

# Attributes that are `Event` fields or describe `data`; every other attribute is one of `Event.extensions`.
NOT_EXTENSIONS = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "resource", "resourceinstance"}
    | {"data", "data_base64", "datacontenttype", "dataschema"}
)
STOP_MARGIN = 0.25
"""Seconds kept from the stop deadline for giving claims back and closing."""


class HandlerStartError(Exception):
    """A handler's `start` failed or ran over its `step_timeout`: the dispatcher does not start."""


def event_from_record(record: InboxRecord) -> Event:
    raw = record.event
    return Event(
        id=record.id,
        type=record.type,
        source=record.source,
        subject=record.subject,
        resource=record.resource,
        resourceinstance=record.resourceinstance,
        time=record.time,
        data=raw.get("data"),
        extensions={k: v for k, v in raw.items() if k not in NOT_EXTENSIONS},
        channel=record.channel,
        attempt=record.attempts,
        received_at=record.received_at,
    )


SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class DispatchMetrics:
    """Runs by how they ended, and steps by handler. Every label set a run or step can end with is there from the
    start (at 0), so that `increase()` sees the first one."""

    def __init__(self, registry: CollectorRegistry, running: Any, pipelines: Pipelines) -> None:
        self.outcomes = Counter(
            "altinn_receiver_dispatch_outcomes",
            "Pipeline runs by how they ended (status), the types glob of the pipeline that matched (type) and the "
            'handler the run ended at (handler: the one that failed, or the last; "" when none ran).',
            ["status", "type", "handler"],
            registry=registry,
        )
        self.seconds = Histogram(
            "altinn_receiver_dispatch_seconds",
            "Time one event's pipeline ran.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.running = Gauge("altinn_receiver_dispatch_running", "Pipelines running now.", registry=registry)
        self.running.set_function(running)
        self.steps = Counter(
            "altinn_receiver_step",
            "Handler steps run, by handler and how they ended (ok, retry, pause, timeout, permanent, cancelled).",
            ["handler", "outcome"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "altinn_receiver_step_seconds",
            "Time one handler step ran.",
            ["handler"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.outcomes.labels("skipped", "", "")
        for pipeline in pipelines.pipelines:
            for pattern in pipeline.types:
                self.outcomes.labels("dead", pattern, "")
                self.outcomes.labels("done", pattern, pipeline.steps[-1].name if pipeline.steps else "")
                for step in pipeline.steps:
                    self.outcomes.labels("retrying", pattern, step.name)
                    self.outcomes.labels("dead", pattern, step.name)
        for name in pipelines.steps:
            self.step_seconds.labels(name)
            for outcome in STEP_OUTCOMES:
                self.steps.labels(name, outcome)

    def step(self, handler: str, outcome: str, seconds: float) -> None:
        self.steps.labels(handler, outcome).inc()
        self.step_seconds.labels(handler).observe(seconds)


class Dispatcher:
    """The background service that runs the handlers (`receiver.runtime.Service`)."""

    name = "dispatcher"

    def __init__(self, pipelines: Pipelines, settings: DispatchConfig, *, rng: random.Random | None = None) -> None:
        self.pipelines = pipelines
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._rng = rng or random.Random()
        self._state = "not started"
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._running: dict[asyncio.Task[None], InboxRecord] = {}
        """Every run's task, until its outcome is recorded."""
        self._leases: dict[int, asyncio.Task[None]] = {}
        """The claims (by seq) of running events whose outcome is not being recorded yet: the busy slots."""
        self._ready: deque[InboxRecord] = deque()
        """Events claimed ahead, in claim order, that start as soon as a slot is free."""
        self._ahead = max(1, settings.concurrency // 4)
        self._stopping = False
        self._tasks: tuple[asyncio.Task[None], ...] = ()
        """The claim loop and the lease keeper, once started."""
        self._stop_listening: Callable[[], Awaitable[None]] | None = None
        self._started_steps: list[Step] = []
        """The steps whose handler's `start` has run: their `aclose` runs when the dispatcher stops."""

    @classmethod
    def from_config(cls, config: Config) -> Dispatcher:
        """Resolve the pipelines now: an unknown handler or a bad option is a ConfigError before anything starts."""
        return cls(load_pipelines(config), config.dispatch)

    async def start(self, runtime: Runtime) -> None:
        self._altinn = runtime.require_altinn() if self.pipelines.uses_altinn else None
        self._receiver_metrics = runtime.metrics
        self._metrics = DispatchMetrics(runtime.metrics.registry, lambda: len(self._leases), self.pipelines)
        # Set by the webhook and catch-up when they commit events, and by `_finished` when a run ends.
        self._wake = runtime.new_events
        # The database, the listener and the handlers' `start` are the only waits, and the last: a start that fails
        # or is cancelled by an early shutdown closes what it opened (connect closes its own when cancelled), for
        # stop() has nothing to close until the tasks exist. Every statement of the dispatcher and the handlers
        # stands alone: pipelines share the database.
        self._db: Database = await runtime.backend.connect(background=True)
        try:
            self._stop_listening = await runtime.backend.listen(self._wake.set)
            await self._start_handlers()
        except BaseException:
            await self._close()
            raise
        self._tasks = (
            asyncio.create_task(self._claim_loop(), name="dispatcher"),
            asyncio.create_task(self._keep_leases(), name="dispatcher-leases"),
        )
        self._state = "running"
        log.info("dispatcher started", extra={"owner": self.owner, **self.describe()})
        if self.pipelines.warning:
            log.warning(self.pipelines.warning)

    async def _start_handlers(self) -> None:
        """Each handler's `start`, once, in the order the pipelines name them, each within its `step_timeout`."""
        for step in self.pipelines.steps.values():
            ctx = step_context(step.name, step.options, event=None, store=HandlerStore(self._db), results={},
                               altinn=self._altinn, metrics=self._receiver_metrics,
                               backoff_cap=self.settings.backoff_cap)  # fmt: skip
            try:
                await within(step.handler.start(ctx), step.timeout, f"{step.name}:start")
            except Exception as exc:
                raise HandlerStartError(f"handler {step.name!r} did not start: {type(exc).__name__}: {exc}") from exc
            self._started_steps.append(step)

    async def _close(self) -> None:
        """Stop listening, close the handlers and the database (what `start` opened)."""
        if self._stop_listening is not None:
            await self._stop_listening()
        await self._close_handlers()
        await self._db.close()

    async def _close_handlers(self) -> None:
        """`aclose` of each handler whose `start` ran, once; a failure is logged and the others still close."""
        steps, self._started_steps = self._started_steps, []
        for step in steps:
            try:
                await step.handler.aclose()
            except Exception:
                log.warning("a handler failed to close", extra={"handler": step.name}, exc_info=True)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            # Cleared before counting the free slots: a run that ends or an event that arrives from here on wakes
            # the wait below.
            self._wake.clear()
            missing = self.settings.concurrency + self._ahead - len(self._leases) - len(self._ready)
            if missing > 0:
                self._ready.extend(await self._claim(missing))
                self._start_ready()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()

    async def _claim(self, limit: int) -> list[InboxRecord]:
        try:
            return await queue.claim(self._db, self.owner, self.settings.lease, limit)
        except StoreError as exc:
            log.warning("cannot claim events; trying again", extra={"error": str(exc)})
            return []

    def _start_ready(self) -> None:
        """Run ready events in the free slots, earliest claim first (until `stop`, which gives them back)."""
        while self._ready and len(self._leases) < self.settings.concurrency and not self._stopping:
            record = self._ready.popleft()
            task = asyncio.create_task(self._run(record), name=f"dispatch:{record.id}")
            self._running[task] = record
            self._leases[record.seq] = task
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        record = self._running.pop(task)
        self._leases.pop(record.seq, None)
        self._start_ready()
        self._wake.set()  # refill `ready`; a later event of the same instance may go now
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatching an event failed", exc_info=task.exception())

    async def _run(self, record: InboxRecord) -> None:
        links = [await traceparent_of(self._db, record.id)] if tracing.on() else []
        attributes: tracing.Attributes = {
            "cloudevents.event_id": record.id,
            "cloudevents.event_type": record.type,
            "altinn_receiver.attempt": record.attempts,
        }
        with tracing.span("dispatch", kind="consumer", attributes=attributes, links=links) as span:
            await self._dispatch(record, span)

    async def _dispatch(self, record: InboxRecord, span: tracing.Span) -> None:
        started = time.perf_counter()
        pipeline = self.pipelines.for_type(record.type)
        pattern = (pipeline.pattern(record.type) or "") if pipeline is not None else ""
        with log_context(event_id=record.id):  # on every line the handlers and the Altinn clients write meanwhile
            outcome = await self._outcome(record, pipeline)
        del self._leases[record.seq]  # from here on, losing the lease cannot cancel the recording of the outcome
        self._start_ready()  # the slot is free: the next event need not wait for this outcome's round trip
        decision = decide(outcome, record.attempts, record.received_at, self.settings, self._rng)
        status, reason, next_attempt_at = decision.status, decision.reason, decision.next_attempt_at
        span.set({"altinn_receiver.outcome": status, "altinn_receiver.pipeline": pattern})
        span.set({"altinn_receiver.handler": outcome.step})
        if status in ("retrying", "dead"):
            span.fail(reason)
        try:
            ours = await queue.finish(
                self._db, record.seq, self.owner, status, reason, next_attempt_at, count_attempt=decision.counts
            )
        except StoreError as exc:
            log.error("cannot record the outcome; the event runs again when its lease expires",
                      extra={"event_id": record.id, "error": str(exc)})  # fmt: skip
            return
        seconds = time.perf_counter() - started
        fields = {"event_id": record.id, "event_type": record.type, "resourceinstance": record.resourceinstance,
                  "attempt": record.attempts, "outcome": status, "ms": round(seconds * 1000, 1)}  # fmt: skip
        if not ours:
            log.warning("the claim was taken over while running; its outcome is not recorded", extra=fields)
            return
        self._counts[status] += 1
        self._metrics.outcomes.labels(status, pattern, outcome.step).inc()
        self._metrics.seconds.observe(seconds)
        if status == "retrying":
            log.warning("event will be retried", extra={**fields, "reason": reason, "next_attempt_at": next_attempt_at})
        elif status == "dead":
            log.error("event is dead", extra={**fields, "reason": reason})
        else:
            log.info(f"event {status}", extra={**fields, **({"reason": reason} if reason else {})})

    async def _outcome(self, record: InboxRecord, pipeline: Pipeline | None) -> Outcome:
        if record.pruned:  # replayed by a release that did not know about retention
            return Outcome("dead", "its payload was pruned by retention ([retention] done): it cannot run again")
        if pipeline is None:
            return Outcome("skipped", f"no pipeline for type {record.type}")
        if record.attempts > self.settings.max_attempts:
            return Outcome(
                "dead", f"its runs stopped unfinished {record.attempts - 1} times (worker gone, lease expired)"
            )
        return await self._run_pipeline(pipeline, event_from_record(record))

    async def _run_pipeline(self, pipeline: Pipeline, event: Event) -> Outcome:
        results: dict[str, Any] = {}
        store = HandlerStore(self._db)  # one per run, shared by its steps
        for step in pipeline.steps:
            ctx = step_context(step.name, step.options, event=event, store=store, results=results,
                               altinn=self._altinn, metrics=self._receiver_metrics,
                               backoff_cap=self.settings.backoff_cap)  # fmt: skip
            with tracing.span(f"handler {step.name}", attributes={"altinn_receiver.handler": step.name}) as span:
                failed = await self._run_step(step, event, ctx, span)
            if failed is not None:
                return failed
        return Outcome("done", step=pipeline.steps[-1].name if pipeline.steps else "")

    async def _run_step(self, step: Step, event: Event, ctx: Context[Any], span: tracing.Span) -> Outcome | None:
        """One step, counted and timed by how it ended: None when it succeeded, else what its failure means."""
        started = time.perf_counter()
        try:
            await run_step(step.handler, event, ctx, step.timeout)
        except asyncio.CancelledError:
            self._metrics.step(step.name, "cancelled", time.perf_counter() - started)
            raise
        except Exception as exc:
            outcome = failure(step.name, exc)
            ended = "timeout" if isinstance(exc, StepTimeout) else step_outcome(outcome)
            self._metrics.step(step.name, ended, time.perf_counter() - started)
            span.set({"altinn_receiver.outcome": ended})
            span.fail(short(outcome.reason), type(exc).__qualname__)
            return outcome
        self._metrics.step(step.name, "ok", time.perf_counter() - started)
        span.set({"altinn_receiver.outcome": "ok"})
        return None

    async def _keep_leases(self) -> None:
        """Every third of `lease`, renew the claims of all running and ready events in one statement. A claim that is
        no longer ours (our lease ran out, e.g. the process was stopped that long, and another worker took the event)
        is dropped if ready and its run cancelled if running: its outcome is the new owner's to record."""
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            held = set(self._leases) | {record.seq for record in self._ready}
            if not held:
                continue
            try:
                kept = await queue.extend_leases(self._db, self.owner, self.settings.lease)
            except StoreError as exc:
                log.warning("cannot renew leases", extra={"claims": len(held), "error": str(exc)})
                continue
            lost = held - kept
            for record in [record for record in self._ready if record.seq in lost]:
                log.warning("lease lost to another worker: dropping a claimed-ahead event",
                            extra={"event_id": record.id})  # fmt: skip
                self._ready.remove(record)
            for seq in lost:
                task = self._leases.pop(seq, None)  # None: its outcome was being recorded meanwhile
                if task is not None:
                    log.warning("lease lost to another worker: abandoning this run",
                                extra={"event_id": self._running[task].id})  # fmt: skip
                    task.cancel()

    async def stop(self, deadline: float) -> None:
        if not self._tasks:
            return
        self._stopping = True
        self._state = "stopping"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = set(self._running)
        finished: set[asyncio.Task[None]] = set()
        if running:
            log.info("letting running pipelines finish", extra={"running": len(running)})
            finished, unfinished = await asyncio.wait(
                running, timeout=max(deadline - time.monotonic() - STOP_MARGIN, 0)
            )
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        try:
            released = await queue.release_claims(self._db, self.owner)
        except StoreError as exc:
            released = 0
            log.error("cannot give claims back; they run again when their leases expire",
                      extra={"error": str(exc)})  # fmt: skip
        await self._close()
        self._state = "stopped"
        self._ready.clear()
        log.info("dispatcher stopped", extra={"finished": len(finished), "released": released})

    def describe(self) -> dict[str, Any]:
        return {
            "concurrency": self.settings.concurrency,
            "pipelines": [
                {"types": list(p.types), "handlers": [s.name for s in p.steps]} for p in self.pipelines.pipelines
            ],
        }

    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "running": len(self._leases),
            "ready": len(self._ready),
            **self._counts,
            **self.describe(),
        }
