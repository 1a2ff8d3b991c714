"""The dispatcher: claim events from the inbox, run each one's pipeline of handlers, record how it ended.

What it does for users — order per `resourceinstance`, claiming ahead, retries, leases, shutdown — is said once, in
docs/handlers.md ("The dispatcher"). Here, how the code reads, top to bottom as one event travels: `start` opens the
dispatcher's own store connection, runs each handler's `start` and then `_claim_loop` (keeps the slots and the
ready claims full, sleeps until a commit, a finished run or `poll_interval`); `_run` runs one event and records what
`worker/outcomes.py` decides, with the run's row of the event's attempt history (store/attempts.py) in the same
transaction; `_run_pipeline` runs the handlers in order, each within its deadline
(`worker/steps.py`), over one `FencedHandlerStore` per run; `_keep_leases` renews every claim in one statement;
`stop` gives back what did not finish (with a `released` row for each run it cut short) and closes the handlers.

A run whose lease is lost (the process was paused or starved past `lease`, and another worker took the event) is
ended by `_lose`, once, however it is found: the lease keeper finds the claim gone, a write of its handlers is
refused, or its outcome is. Its task is cancelled, and everything it still tries to write is refused by the claim
token its writes and its outcome carry (store/queue.py), so it never overwrites the new owner's rows. The runs are
kept by task, never by event: a run that lingers after its claim was lost can share its event with a newer one.

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
import itertools
import logging
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from handlers.api import Context, Event
from receiver.config import Config, DispatchConfig
from receiver.observability import tracing
from receiver.observability.logs import log_context
from receiver.store import queue
from receiver.store.attempts import RELEASED, NewAttempt
from receiver.store.errors import StoreError
from receiver.store.handler_store import Claim, FencedHandlerStore, HandlerStore
from receiver.store.interface import Database
from receiver.store.records import InboxRecord
from receiver.store.traces import traceparent_of
from receiver.timeutil import now_iso
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
LEASE_LOST = "lease lost to another worker"
STOP_MARGIN = 0.25
"""Seconds kept from the stop deadline for giving claims back and closing."""
GIVEN_BACK = "cut short by the shutdown: given back, to run again"
"""The error of an attempt given back at shutdown."""


class HandlerStartError(Exception):
    """A handler's `start` failed or ran over its `step_timeout`: the dispatcher does not start."""


@dataclass(eq=False)
class Run:
    """One claimed event's run, from its pipeline's start until its outcome is recorded."""

    record: InboxRecord
    task: asyncio.Task[None] | None = None
    recording: bool = False
    """The pipeline is over and its outcome is being recorded: its slot is free, and it is no longer cancelled."""
    lost: bool = False
    """Its claim was taken over: it is being cancelled, and what it writes is refused."""
    started_at: str = field(default_factory=now_iso)
    step: str = ""
    """The handler step running (or the last one that ran): where a run given back at shutdown got to."""

    @property
    def claim(self) -> tuple[int, str]:
        return self.record.seq, self.record.lease_owner

    def attempt(self, step: str, outcome: str, error: str, http_status: int | None = None) -> NewAttempt:
        """The run's row of the event's attempt history, ending now."""
        record = self.record
        return NewAttempt(record.id, record.attempts, self.started_at, now_iso(), step, outcome, error, http_status)


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

    def __init__(
        self,
        pipelines: Pipelines,
        settings: DispatchConfig,
        *,
        rng: random.Random | None = None,
        history: bool = True,
    ) -> None:
        """`history=False` records outcomes without their rows of `attempts`: only bench/history.py's baseline."""
        self.pipelines = pipelines
        self.settings = settings
        self.history = history
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._rng = rng or random.Random()
        self._state = "not started"
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._runs: dict[asyncio.Task[None], Run] = {}
        """Every run, by its task, until the task ends."""
        self._claim_numbers = itertools.count(1)
        """Numbers every claim statement's token (`queue.claim_token`) apart."""
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
        self._metrics = DispatchMetrics(runtime.metrics.registry, self._busy, self.pipelines)
        # Set by the webhook and catch-up when they commit events, and by `_finished` when a run ends.
        self._wake = runtime.new_events
        # The database, the listener and the handlers' `start` are the only waits, and the last: a start that fails
        # or is cancelled by an early shutdown closes what it opened (connect closes its own when cancelled), for
        # stop() has nothing to close until the tasks exist. Every statement of the dispatcher and the handlers
        # stands alone: pipelines share the database.
        # A transaction of ours idle for a lease (this process paused or starved between two of its statements)
        # is ended by the server: its row locks would keep another worker from taking over the very events whose
        # leases ran out meanwhile (a claim skips locked rows), for as long as the pause.
        self._db: Database = await runtime.backend.connect(background=True, stalled_after=self.settings.lease)
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
            missing = self.settings.concurrency + self._ahead - self._busy() - len(self._ready)
            if missing > 0:
                self._ready.extend(await self._claim(missing))
                self._start_ready()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()

    async def _claim(self, limit: int) -> list[InboxRecord]:
        try:
            token = queue.claim_token(self.owner, next(self._claim_numbers))
            return await queue.claim(self._db, token, self.settings.lease, limit)
        except StoreError as exc:
            log.warning("cannot claim events; trying again", extra={"error": str(exc)})
            return []

    def _busy(self) -> int:
        """The slots taken: runs whose pipeline is not over."""
        return sum(not run.recording for run in self._runs.values())

    def _start_ready(self) -> None:
        """Run ready events in the free slots, earliest claim first (until `stop`, which gives them back)."""
        while self._ready and self._busy() < self.settings.concurrency and not self._stopping:
            run = Run(self._ready.popleft())
            run.task = asyncio.create_task(self._run(run), name=f"dispatch:{run.record.id}")
            self._runs[run.task] = run
            run.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._runs.pop(task, None)
        self._start_ready()
        self._wake.set()  # refill `ready`; a later event of the same instance may go now
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatching an event failed", exc_info=task.exception())

    async def _run(self, run: Run) -> None:
        record = run.record
        links = [await traceparent_of(self._db, record.id)] if tracing.on() else []
        attributes: tracing.Attributes = {
            "cloudevents.event_id": record.id,
            "cloudevents.event_type": record.type,
            "altinn_receiver.attempt": record.attempts,
        }
        with tracing.span("dispatch", kind="consumer", attributes=attributes, links=links) as span:
            await self._dispatch(run, span)

    async def _dispatch(self, run: Run, span: tracing.Span) -> None:
        record = run.record
        started = time.perf_counter()
        pipeline = self.pipelines.for_type(record.type)
        pattern = (pipeline.pattern(record.type) or "") if pipeline is not None else ""
        claim = Claim(record.seq, record.lease_owner, record.id)
        store = FencedHandlerStore(self._db, claim, lambda: self._lose(run, "a write was refused"))
        try:
            with log_context(event_id=record.id):  # on every line the handlers and the Altinn clients write meanwhile
                outcome = await self._outcome(run, pipeline, store)
        except asyncio.CancelledError:
            if not run.lost:
                raise
            span.fail(LEASE_LOST)
            return  # cancelled by `_lose`: the run is over, and nothing of it is recorded
        run.recording = True  # from here on, losing the lease cannot cancel the recording of the outcome
        self._start_ready()  # the slot is free: the next event need not wait for this outcome's round trip
        if run.lost:  # lost as the last step ended
            span.fail(LEASE_LOST)
            return
        decision = decide(outcome, record.attempts, record.received_at, self.settings, self._rng)
        status, reason, next_attempt_at = decision.status, decision.reason, decision.next_attempt_at
        span.set({"altinn_receiver.outcome": status, "altinn_receiver.pipeline": pattern})
        span.set({"altinn_receiver.handler": outcome.step})
        if status in ("retrying", "dead"):
            span.fail(reason)
        try:
            attempt = run.attempt(outcome.step, status, reason, outcome.http_status) if self.history else None
            ours = await queue.finish(
                self._db, record.seq, record.lease_owner, status, reason, next_attempt_at,
                count_attempt=decision.counts, history=attempt,
            )  # fmt: skip
        except StoreError as exc:
            log.error("cannot record the outcome; the event runs again when its lease expires",
                      extra={"event_id": record.id, "error": str(exc)})  # fmt: skip
            return
        if not ours:
            span.fail(LEASE_LOST)
            self._lose(run, "its outcome was refused")
            return
        seconds = time.perf_counter() - started
        fields = {"event_id": record.id, "event_type": record.type, "resourceinstance": record.resourceinstance,
                  "attempt": record.attempts, "outcome": status, "ms": round(seconds * 1000, 1)}  # fmt: skip
        self._counts[status] += 1
        self._metrics.outcomes.labels(status, pattern, outcome.step).inc()
        self._metrics.seconds.observe(seconds)
        if status == "retrying":
            log.warning("event will be retried", extra={**fields, "reason": reason, "next_attempt_at": next_attempt_at})
        elif status == "dead":
            log.error("event is dead", extra={**fields, "reason": reason})
        else:
            log.info(f"event {status}", extra={**fields, **({"reason": reason} if reason else {})})

    async def _outcome(self, run: Run, pipeline: Pipeline | None, store: HandlerStore) -> Outcome:
        record = run.record
        if record.pruned:  # replayed by a release that did not know about retention
            return Outcome("dead", "its payload was pruned by retention ([retention] done): it cannot run again")
        if pipeline is None:
            return Outcome("skipped", f"no pipeline for type {record.type}")
        if record.attempts > self.settings.max_attempts:
            return Outcome(
                "dead", f"its runs stopped unfinished {record.attempts - 1} times (worker gone, lease expired)"
            )
        return await self._run_pipeline(run, pipeline, event_from_record(record), store)

    async def _run_pipeline(self, run: Run, pipeline: Pipeline, event: Event, store: HandlerStore) -> Outcome:
        """The steps in order over `store`, the run's own, shared by its steps."""
        results: dict[str, Any] = {}
        for step in pipeline.steps:
            run.step = step.name
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

    def _lose(self, run: Run, found_by: str) -> None:
        """End a run whose claim was taken over, once: a warning, and its task cancelled unless it is already
        recording its outcome (which is then refused). Its writes are refused from the moment the claim changed."""
        if run.lost:
            return
        run.lost = True
        log.warning(f"{LEASE_LOST}: the run is cancelled, its writes and its outcome refused",
                    extra={"event_id": run.record.id, "found_by": found_by})  # fmt: skip
        if not run.recording and run.task is not None:
            run.task.cancel()

    async def _keep_leases(self) -> None:
        """Every third of `lease`, renew the claims of all running and ready events in one statement. A claim that is
        no longer ours (our lease ran out, e.g. the process was stopped that long, and another worker took the event)
        is dropped if ready and its run ended if running: its outcome is the new owner's to record."""
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            held = {run.claim for run in self._runs.values() if not run.recording}
            held |= {(record.seq, record.lease_owner) for record in self._ready}
            if not held:
                continue
            try:
                kept = await queue.extend_leases(self._db, self.owner, self.settings.lease)
            except StoreError as exc:
                log.warning("cannot renew leases", extra={"claims": len(held), "error": str(exc)})
                continue
            lost = held - kept
            for record in [record for record in self._ready if (record.seq, record.lease_owner) in lost]:
                log.warning("lease lost to another worker: dropping a claimed-ahead event",
                            extra={"event_id": record.id})  # fmt: skip
                self._ready.remove(record)
            for run in list(self._runs.values()):
                if run.claim in lost and not run.recording:  # recording meanwhile: it finished, or finds out itself
                    self._lose(run, "renewing the lease")

    async def stop(self, deadline: float) -> None:
        if not self._tasks:
            return
        self._stopping = True
        self._state = "stopping"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = dict(self._runs)
        finished: set[asyncio.Task[None]] = set()
        given_back: dict[tuple[int, str], NewAttempt] = {}
        if running:
            log.info("letting running pipelines finish", extra={"running": len(running)})
            finished, unfinished = await asyncio.wait(
                running, timeout=max(deadline - time.monotonic() - STOP_MARGIN, 0)
            )
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            # Those whose claim still holds are given back below, with their rows (an outcome recorded meanwhile
            # ended the claim, and its row was written with it).
            given_back = {run.claim: run.attempt(run.step, RELEASED, GIVEN_BACK)
                          for task, run in running.items() if task in unfinished and not run.lost}  # fmt: skip
        try:
            released = await queue.release_claims(self._db, self.owner, given_back if self.history else None)
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
            "running": self._busy(),
            "ready": len(self._ready),
            **self._counts,
            **self.describe(),
        }
