"""/events: the event log, newest first, filtered and paged, live over server-sent events; /events/{id}: one event
as received, its status and attempts, and its replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from receiver.console.auth import require_change
from receiver.console.filters import Filters
from receiver.console.render import fragment, render
from receiver.console.state import console_runtime, console_state
from receiver.store.attempts import Attempt, event_attempts
from receiver.store.errors import StoreError
from receiver.store.inbox import EventFilter, get_event, list_events
from receiver.store.operations import ChangeFeed
from receiver.store.records import InboxRecord
from receiver.store.schema import INBOX_STATUSES
from receiver.timeutil import parse_iso
from receiver.worker.replay import plan_replay, replay_in_batches

log = logging.getLogger("receiver.console")

PAGE_SIZE = 50
BEGINNING = "1970-01-01T00:00:00.000000Z"
"""Where the live stream of a page shown on an empty store starts: every change is news."""
STREAM_POLL_S = 0.5
"""How often a live stream asks the store what changed: a change shows within this (the issue allows 2 s)."""
STREAM_KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""


async def events_page(request: Request) -> Response:
    filters = Filters.read(request.query_params)
    selection = filters.selection()
    if "text/event-stream" in request.headers.get("accept", ""):
        after = request.headers.get("last-event-id") or request.query_params.get("after", "")
        return await _stream(request, selection, after)
    before = _page_start(request.query_params.get("before", ""))
    runtime = console_runtime(request)
    feed = ChangeFeed(runtime.store, selection)
    await feed.start()  # before the listing: a change in between is sent again, never lost
    records = await list_events(runtime.store, selection, limit=PAGE_SIZE + 1, before=before)
    return render(
        request,
        "events.html",
        filters=filters,
        statuses=INBOX_STATUSES,
        events=records[:PAGE_SIZE],
        first_page=before is None,
        older=filters.query(before=records[PAGE_SIZE - 1].seq) if len(records) > PAGE_SIZE else None,
        stream=filters.query(after=feed.cursor or BEGINNING),
    )


def _page_start(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise HTTPException(400, f"before must be the position of an event (a whole number); got {text!r}")
    return int(text)


async def _stream(request: Request, selection: EventFilter, after: str) -> Response:
    """New events and status changes matching `selection` since `after` (the page's moment), as they happen: one
    `change` message per row (its id, its position, the row's HTML), until the client leaves or the console shuts
    down (an `end` message then, so the page stops asking)."""
    runtime = console_runtime(request)
    closing = console_state(request).closing
    feed = ChangeFeed(runtime.store, selection)
    await feed.start(after if _is_time(after) else None)

    async def messages() -> AsyncIterator[str]:
        yield f"retry: {int(STREAM_POLL_S * 4000)}\n\n"
        quiet = 0.0
        while not closing.is_set():
            try:
                changes = await feed.poll()
            except StoreError as exc:
                log.warning("console: the live stream cannot read the store", extra={"error": str(exc)})
                changes = []
            for record in changes:
                change = {"id": record.id, "seq": record.seq, "status": record.status, "html": row(record)}
                yield f"id: {feed.cursor}\nevent: change\ndata: {json.dumps(change)}\n\n"
            quiet = 0.0 if changes else quiet + STREAM_POLL_S
            if quiet >= STREAM_KEEPALIVE_S:
                quiet = 0.0
                yield ": still here\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), timeout=STREAM_POLL_S)
        yield "event: end\ndata: the console is shutting down\n\n"

    return StreamingResponse(
        messages(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
    )


def _is_time(text: str) -> bool:
    try:
        parse_iso(text)
    except ValueError:
        return False
    return bool(text)


def row(record: InboxRecord) -> str:
    """The event's row of the /events table."""
    return fragment("event_row.html", event=record)


async def event_page(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    runtime = console_runtime(request)
    record = await get_event(runtime.store, event_id)
    if record is None:
        raise HTTPException(404, f"no event with id {event_id!r} in the inbox")
    raw = None if record.pruned else json.dumps(record.event, indent=2, ensure_ascii=False)
    return render(
        request,
        "event.html",
        event=record,
        raw=raw,
        attempts=[(attempt, _took(attempt)) for attempt in await event_attempts(runtime.store, event_id)],
        replayed=request.query_params.get("replayed") == "1",
    )


def _took(attempt: Attempt) -> float:
    """How long a run took, in seconds."""
    return max((parse_iso(attempt.finished_at) - parse_iso(attempt.started_at)).total_seconds(), 0.0)


async def replay_event(request: Request) -> Response:
    """Put one event back in the queue (`events replay ID`): refused while it is processed, once its payload is
    pruned, or when the doors refuse it."""
    await require_change(request)
    event_id = request.path_params["event_id"]
    runtime = console_runtime(request)
    plan = await plan_replay(runtime.store, (event_id,), EventFilter())
    if plan.unknown:
        raise HTTPException(404, f"no event with id {event_id!r} in the inbox")
    if plan.busy:
        raise HTTPException(409, "the event is being processed right now: wait for it to finish, then replay it")
    if plan.pruned:
        raise HTTPException(409, "retention pruned the event's payload ([retention] done): it cannot run again")
    if plan.refused:
        raise HTTPException(409, "the doors refuse this event (it is not a valid CloudEvent): it can never run")
    if not await replay_in_batches(runtime.store, [event_id]):
        raise HTTPException(409, "the event started processing meanwhile: wait for it to finish, then replay it")
    runtime.notify_new_events()
    log.info("console: replayed an event", extra={"event_id": event_id})
    return RedirectResponse(f"/events/{quote(event_id, safe='')}?replayed=1", status_code=303)


routes: list[BaseRoute] = [
    Route("/events", events_page, methods=["GET"]),
    # Before the page's route: a POST to …/replay is a replay, a GET of any path below /events an event's page
    # (ids may hold a "/": a link quotes it, and the path arrives unquoted).
    Route("/events/{event_id:path}/replay", replay_event, methods=["POST"]),
    Route("/events/{event_id:path}", event_page, methods=["GET"]),
]
