"""Catch-up: read what Altinn's pull API holds after each subscription's cursor into the inbox (events contract §5).

- One cursor per subscription key (resource, subject, type): the id of the last event read. Each run pages
  `GET /events/api/v1/events?resource=…&subject=…&after=…&size=1000` until a page comes back empty.
- Events go into the same inbox as pushes (`channel = "catchup"`), deduplicated by id. One that the webhook would
  refuse (not a CloudEvent, text no store can hold, a `time` that cannot be read) is kept as a `dead` row with the
  reason in `last_error` and its text escaped, and the cursor moves past it: a bad event must never hold back the
  good ones after it (Altinn keeps events for 90 days, and would serve the same page for ever).
- First run: `[catchup] start = "beginning"` enqueues everything in Altinn's 90-day retention; `"now"` pages to the
  current end once without enqueueing (the pull API has no time parameter) and continues from there.
- A stuck cursor: Altinn filters a page for authorisation after paging it, so a page can come back empty with no
  `next` while later events exist. A run that cannot move the cursor although pushes for the key have arrived since
  its last move (older than Altinn's 30 s pull lag, so the pull API would show them) warns and counts it.
- `altinn_receiver_catchup_lag_seconds` says how far behind the pull API a cursor is: the age of the last event a run
  has read while it pages, 0 once a run has reached the end. While traces are on, each run is a `catchup` span with
  a `catchup page` span per page, and the events a page enqueues are stored with its traceparent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from receiver.altinn import AltinnClients, AltinnError
from receiver.altinn.models import EventPage
from receiver.config import Config, SubscriptionConfig
from receiver.observability import tracing
from receiver.observability.logs import redact
from receiver.runtime import stop_task
from receiver.store import state
from receiver.store.errors import StoreError
from receiver.store.inbox import insert_refused, stored
from receiver.store.interface import Database, Executes
from receiver.store.records import NewEvent, RefusedEvent
from receiver.sync.lease import SyncLease, first_turn, held
from receiver.text import escape_unstorable, unstorable
from receiver.timeutil import now, now_iso, parse_event_time, to_iso
from receiver.web.cloudevent import InvalidEvent, compact_json, to_new_event

if TYPE_CHECKING:
    from receiver.altinn.events_api import EventsApi
    from receiver.runtime import Runtime

log = logging.getLogger("receiver.catchup")

PAGE_SIZE = 1000
PULL_LAG = 30.0
"""Altinn's pull API shows only events registered at least 30 s ago (getevents.sql)."""
PROGRESS_EVERY = 5.0
"""Seconds between progress lines in the log during a long run."""

REFUSED = "invalid event from the pull API: "
"""How the `last_error` of an event kept dead by catch-up begins."""
REFUSED_ID_PREFIX = "invalid:"
"""The id of a refused event that has none that can be stored: this and a digest of its text."""

Insert = Callable[[list[NewEvent]], Awaitable[list[bool]]]
"""Store a page of events in the inbox as `channel = "catchup"` (one commit); False for an id already there."""


@dataclass
class RunResult:
    """What one catch-up run did for one key; `skipped` counts events paged over by `start = "now"`."""

    key: SubscriptionConfig
    after: str
    pages: int = 0
    read: int = 0
    enqueued: int = 0
    duplicates: int = 0
    invalid: int = 0
    skipped: int = 0
    stuck_pushes: int = 0
    error: str = ""
    finished_at: str = ""
    last_event_time: str = ""
    """The `time` of the last event read (as Altinn wrote it); "" before the first page."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("key"))
        return data


class CatchupMetrics:
    """`altinn_receiver_catchup_*` on the receiver's registry."""

    def __init__(self, registry: CollectorRegistry, keys: Sequence[SubscriptionConfig]) -> None:
        labels = ["resource", "subject", "type"]
        self.events = Counter(
            "altinn_receiver_catchup_events",
            "Events read from the pull API, by outcome (enqueued, duplicate, invalid: kept dead, skipped: start=now).",
            [*labels, "outcome"],
            registry=registry,
        )
        self.last_success = Gauge(
            "altinn_receiver_catchup_last_success_timestamp_seconds",
            "When a catch-up run last reached the end of the pull API (Unix time).",
            labels,
            registry=registry,
        )
        self.stuck = Counter(
            "altinn_receiver_catchup_stuck",
            "Catch-up runs that found the cursor stuck: an empty page while pushes newer than the cursor arrived.",
            labels,
            registry=registry,
        )
        self.lag = CatchupLag(registry, keys)

    def record(self, result: RunResult) -> None:
        if not result.error:
            self.lag.behind[result.key] = None
        labels = _labels(result.key)
        for outcome in ("enqueued", "duplicates", "invalid", "skipped"):
            count = getattr(result, outcome)
            if count:
                self.events.labels(**labels, outcome=outcome.removesuffix("s")).inc(count)
        if not result.error:
            self.last_success.labels(**labels).set(time.time())
        if result.stuck_pushes:
            self.stuck.labels(**labels).inc()


class CatchupLag(Collector):
    """`altinn_receiver_catchup_lag_seconds{resource,subject,type}`, computed when scraped, so a run that stopped
    half-way (Altinn failing) shows a lag that keeps growing."""

    NAME = "altinn_receiver_catchup_lag_seconds"

    def __init__(self, registry: CollectorRegistry, keys: Sequence[SubscriptionConfig]) -> None:
        self.behind: dict[SubscriptionConfig, datetime | None] = dict.fromkeys(keys)
        """Per key: the time of the last event read by a run that has not reached the end; None once one has."""
        registry.register(self)

    def paged(self, result: RunResult) -> None:
        """A run read a page: its cursor is as far behind as the page's last event is old."""
        try:
            self.behind[result.key] = parse_event_time(result.last_event_time)
        except ValueError:  # an event without a time: behind by as long as the run takes from here
            self.behind[result.key] = now()

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            self.NAME,
            "How far behind Altinn's pull API the catch-up cursor is: the age of the last event read by a run that has "
            "not reached the end yet; 0 once a run has.",
            labels=["resource", "subject", "type"],
        )
        at = now()
        for key, since in self.behind.items():
            family.add_metric(list(_labels(key).values()), max((at - since).total_seconds(), 0.0) if since else 0.0)
        yield family


def _labels(key: SubscriptionConfig) -> dict[str, str]:
    return {"resource": key.resource, "subject": key.subject, "type": key.type}


def pulled_event(event: Any) -> NewEvent:
    """A pulled event validated like a push (raises InvalidEvent); `raw` is its compact JSON."""
    return to_new_event(event, compact_json(event))


def refused_event(item: Any, problem: InvalidEvent) -> RefusedEvent:
    """An item of a page that the door refuses, as a dead row: its JSON text and its attributes with lone surrogates
    and NUL escaped, attributes of the wrong type left empty, `time` only if it can be read, and its own id unless
    it has none that can be stored (then `invalid:` and a digest of its text, the same at every reading)."""
    raw = escape_unstorable(compact_json(item))
    attributes = item if isinstance(item, dict) else {}

    def text(name: str) -> str:
        value = attributes.get(name)
        return escape_unstorable(value) if isinstance(value, str) else ""

    event_id = attributes.get("id")
    if not isinstance(event_id, str) or not event_id or unstorable(event_id):
        event_id = REFUSED_ID_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:32]
    time = text("time")
    try:
        parse_event_time(time)
    except ValueError:
        time = ""
    return RefusedEvent(id=event_id, type=text("type"), source=text("source"), subject=text("subject"),
                        resource=text("resource"), resourceinstance=text("resourceinstance"), time=time, raw=raw,
                        reason=REFUSED + escape_unstorable(str(problem)))  # fmt: skip


@dataclass
class PageRead:
    """A page of the pull API as catch-up takes it: the events to enqueue, those refused (kept dead), and where the
    cursor goes next."""

    events: list[NewEvent]
    refused: list[RefusedEvent]
    after: str
    last_time: str = ""  # the `time` of the page's last item that could be read, for the catch-up lag


def read_page(page: EventPage, after: str) -> PageRead:
    """Validate each item of `page` as the webhook would; never raises. The cursor moves to the id of the page's
    last item, else to the `after` of its `next` link, whichever can be stored (else it stays at `after`)."""
    read = PageRead(events=[], refused=[], after=after)
    for item in page.events:
        try:
            read.events.append(pulled_event(item))
        except InvalidEvent as exc:
            read.refused.append(refused_event(item, exc))
    last = page.events[-1] if page.events else None
    if isinstance(last, dict) and isinstance(last.get("time"), str) and not unstorable(last["time"]):
        read.last_time = last["time"]
    for candidate in (last.get("id") if isinstance(last, dict) else None, page.next_after):
        if isinstance(candidate, str) and candidate and not unstorable(candidate):
            read.after = candidate
            break
    return read


class NextPage:
    """The next page of a run, fetched and read (`read_page`) in a task of its own, so that it arrives while the run
    stores the page before it, under its own `catchup page` span (current in both tasks; `storing` ends it)."""

    def __init__(self, pages: AsyncIterator[EventPage], after: str) -> None:
        self.span = tracing.started("catchup page", {"altinn_receiver.after": after})
        self._ended = False
        self._task = asyncio.create_task(self._fetch(pages, after), name="catchup page")

    async def _fetch(self, pages: AsyncIterator[EventPage], after: str) -> PageRead | None:
        with tracing.within(self.span):
            page = await anext(pages, None)
            if page is None or not page.events:
                return None
            self.span.set({"altinn_receiver.events": len(page.events)})
            return read_page(page, after)

    async def read(self) -> PageRead | None:
        """The page as read, or None at the end of the pull API; raises what the fetch raised (AltinnError)."""
        try:
            read = await self._task
        except BaseException:
            self._end()
            raise
        if read is None:
            self._end()
        return read

    @contextmanager
    def storing(self) -> Iterator[None]:
        """The span current while the page is stored; it ends with the block."""
        try:
            with tracing.within(self.span):
                yield
        finally:
            self._end()

    async def cancel(self) -> None:
        """Stop fetching and forget the page: the run ends before storing it (the page before failed to store, or
        the run was cancelled)."""
        self._task.cancel()
        await asyncio.wait({self._task})
        if not self._task.cancelled():
            self._task.exception()  # retrieved: a failed fetch of a page nobody will store is no error of its own
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self.span.end()


async def catch_up(
    conn: Database,
    events: EventsApi,
    key: SubscriptionConfig,
    insert: Insert,
    *,
    start: str = "now",
    pull_lag: float = PULL_LAG,
    on_page: Callable[[RunResult], None] | None = None,
    page_size: int = PAGE_SIZE,
    cursors: Executes | None = None,
) -> RunResult:
    """One run for one key: page from the cursor to the end, enqueue, move the cursor after every page.

    The next page is fetched and read while a page is stored (one page ahead, never more). Pages are stored one after
    the other in the pull API's order, and the cursor moves past a page only once it is stored: a run that fails or
    is cancelled while storing a page drops the page fetched ahead, and the next run reads both again. `cursors`
    moves the cursor after each page (the inbox writer that `insert` uses, so that the page and its cursor are
    commits of one connection: see `Writer.execute`); `conn` when None."""
    cursor = await state.get_cursor(conn, key)
    enqueue = cursor is not None or start == "beginning"
    result = RunResult(key=key, after=cursor.after if cursor else "0")
    if cursor is None:
        await state.move_cursor(conn, key, result.after)
    pages = events.iter_pages(
        key.resource, result.after, subject=key.subject or None, types=(key.type,) if key.type else (), size=page_size
    )
    ahead = NextPage(pages, result.after)
    try:
        while (read := await ahead.read()) is not None:
            page, ahead = ahead, NextPage(pages, read.after)
            with page.storing():
                count = len(read.events) + len(read.refused)
                if enqueue:
                    await _enqueue(conn, read, result, insert)
                else:
                    result.skipped += count
                result.read += count
                result.after = read.after
                result.last_event_time = read.last_time or result.last_event_time
                result.pages += 1
                await state.move_cursor(cursors or conn, key, result.after)
            if on_page is not None:
                on_page(result)
    finally:
        await ahead.cancel()
    if cursor is not None and result.pages == 0:
        until = to_iso(now() - timedelta(seconds=pull_lag))
        result.stuck_pushes = await state.pushes_since(conn, key, cursor.updated_at, until)
    await state.finish_run(conn, key, stuck_pushes=result.stuck_pushes)
    result.finished_at = now_iso()
    await state.set_fact(conn, state.LAST_CATCHUP_AT, result.finished_at)
    return result


async def _enqueue(conn: Database, read: PageRead, result: RunResult, insert: Insert) -> None:
    added = await insert(read.events) if read.events else []
    result.enqueued += sum(added)
    result.duplicates += len(added) - sum(added)
    if read.refused:
        await insert_refused(conn, read.refused, "catchup")
        result.invalid += len(read.refused)
    for refused in read.refused:
        log.warning(
            "an invalid event from the pull API is kept as a dead event",
            extra={**_labels(result.key), "event_id": refused.id[:100], "problem": refused.reason},
        )


def report(result: RunResult) -> None:
    """The log lines for a finished run: a summary, and a warning when the cursor looks stuck."""
    fields = {**_labels(result.key), **{k: v for k, v in result.to_json().items() if k not in ("error", "finished_at")}}
    if result.error:
        log.warning("catch-up failed; the cursor keeps its place", extra={**fields, "error": result.error})
        return
    log.info("catch-up done", extra=fields)
    if result.stuck_pushes:
        log.warning(
            "catch-up cursor looks stuck: the pull API returned nothing although pushes for this subscription arrived"
            " after the cursor last moved. Altinn filters pages for authorisation after paging them, so a page of"
            " events you may not see comes back empty and the cursor cannot pass it. A subject filter on the"
            " subscription avoids this (see docs/subscriptions.md).",
            extra=fields,
        )


class Progress:
    """Log a line at most every PROGRESS_EVERY seconds while a run pages through a long backlog."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, result: RunResult) -> None:
        if time.monotonic() - self._last >= PROGRESS_EVERY:
            self._last = time.monotonic()
            log.info("catch-up in progress", extra={**_labels(result.key), "pages": result.pages, "read": result.read})


async def run_all(
    config: Config,
    conn: Database,
    clients: AltinnClients,
    insert: Insert,
    *,
    keys: Iterable[SubscriptionConfig] | None = None,
    pull_lag: float = PULL_LAG,
    page_size: int = PAGE_SIZE,
    on_page: Callable[[RunResult], None] | None = None,
    cursors: Executes | None = None,
) -> list[RunResult]:
    """A run for every configured subscription key (or `keys`); an Altinn error ends that key's run, not the rest.
    `cursors`: as `catch_up` takes it."""
    results = []
    for key in dict.fromkeys(config.subscriptions if keys is None else keys):
        attributes = {"altinn_receiver.resource": key.resource, "altinn_receiver.type": key.type}
        with tracing.span("catchup", attributes=attributes) as span:
            try:
                result = await catch_up(
                    conn,
                    clients.events,
                    key,
                    insert,
                    start=config.catchup.start,
                    pull_lag=pull_lag,
                    page_size=page_size,
                    on_page=on_page,
                    cursors=cursors,
                )
            except AltinnError as exc:
                cursor = await state.get_cursor(conn, key)
                result = RunResult(key=key, after=cursor.after if cursor else "0", error=redact(str(exc)))
                span.fail(result.error, type(exc).__qualname__)
            span.set({"altinn_receiver.pages": result.pages, "altinn_receiver.enqueued": result.enqueued})
        results.append(result)
    return results


class CatchupService:
    """Catch-up at start and every `[catchup] interval`. `start` returns after the first run, so the receiver
    counts as started only once it has caught up (or failed to: the next run tries again)."""

    name = "catchup"

    def __init__(
        self, *, pull_lag: float = PULL_LAG, page_size: int = PAGE_SIZE, lease: SyncLease | None = None
    ) -> None:
        """`lease`: run only while this process holds it (shared with `SubscriptionService`); None runs always."""
        self.pull_lag = pull_lag
        self.page_size = page_size
        self._lease = lease
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._state = "starting"
        self._runs = 0
        self._enqueued = 0
        self._duplicates = 0
        self._last: list[RunResult] = []
        self._running: RunResult | None = None
        self._store_error = ""

    async def start(self, runtime: Runtime) -> None:
        config = runtime.config
        if not config.catchup.enabled or not config.subscriptions:
            self._state = "disabled" if not config.catchup.enabled else "none configured"
            return
        clients = runtime.require_altinn()
        metrics = CatchupMetrics(runtime.metrics.registry, config.subscriptions)
        work = held(self._lease, lambda: self._run(runtime, clients, metrics))
        self._task = asyncio.create_task(work, name="catchup")
        await first_turn(self._lease, self._first)

    async def stop(self, deadline: float) -> None:
        await stop_task(self._task, deadline)

    def status(self) -> dict[str, Any]:
        standby = self._task is not None and self._lease is not None and self._lease.standby()
        body: dict[str, Any] = {
            "state": "standby" if standby else self._state,
            "runs": self._runs,
            "enqueued": self._enqueued,
            "duplicates": self._duplicates,
            "cursors": [r.to_json() for r in self._last],
        }
        if self._running is not None:
            body["running"] = {**_labels(self._running.key), "pages": self._running.pages, "read": self._running.read}
        if self._store_error:
            body["error"] = self._store_error
        return body

    async def _run(self, runtime: Runtime, clients: AltinnClients, metrics: CatchupMetrics) -> None:
        progress = Progress()

        async def insert(events: list[NewEvent]) -> list[bool]:
            traceparent = tracing.traceparent()  # the page's span
            added = await stored(runtime.writer.insert_events(events, "catchup", traceparent))
            runtime.metrics.received_by_channel["catchup"].inc(sum(added))
            if any(added):
                runtime.notify_new_events()
            return added

        def on_page(result: RunResult) -> None:
            self._running = result
            metrics.lag.paged(result)
            progress(result)

        try:
            while True:
                self._state = "running"
                try:
                    results = await run_all(
                        runtime.config,
                        runtime.store,
                        clients,
                        insert,
                        pull_lag=self.pull_lag,
                        page_size=self.page_size,
                        on_page=on_page,
                        cursors=runtime.writer,
                    )
                except StoreError as exc:
                    self._store_failed(exc)
                else:
                    self._finished(results, metrics)
                self._running = None
                self._first.set()
                await asyncio.sleep(runtime.config.catchup.interval)
        finally:
            self._first.set()
            metrics.lag.behind = dict.fromkeys(metrics.lag.behind)  # the next holder of the sync lease reports it

    def _finished(self, results: list[RunResult], metrics: CatchupMetrics) -> None:
        for result in results:
            report(result)
            metrics.record(result)
        self._runs += 1
        self._enqueued += sum(r.enqueued for r in results)
        self._duplicates += sum(r.duplicates for r in results)
        self._last = results
        self._store_error = ""
        stuck = any(r.stuck_pushes for r in results)
        self._state = "error" if any(r.error for r in results) else "stuck" if stuck else "idle"

    def _store_failed(self, exc: StoreError) -> None:
        """The store refused a cursor or an event: the cursors keep their place and the next run tries again."""
        self._store_error = str(exc)
        self._state = "error"
        log.warning("catch-up could not use the store; trying again next run", extra={"error": self._store_error})
