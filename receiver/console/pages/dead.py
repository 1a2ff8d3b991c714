"""/dead: the dead letters with their last error, grouped by it, and their replay: one, a selection, or all that
match the filters, after a confirmation that names the count (`events replay`'s rules: receiver/worker/replay.py)."""

from __future__ import annotations

import logging
from dataclasses import replace

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.console.auth import require_change
from receiver.console.filters import Filters, reason_key
from receiver.console.render import render
from receiver.console.state import console_runtime
from receiver.store.inbox import EventFilter, list_events
from receiver.store.interface import Database
from receiver.store.operations import count_by_error, count_events
from receiver.worker.replay import plan_replay, replay_in_batches

log = logging.getLogger("receiver.console")

PAGE_SIZE = 100
SHOWN_IN_CONFIRMATION = 20


async def _dead(db: Database, filters: Filters) -> tuple[EventFilter, list[tuple[str, str, int, str]]]:
    """The dead events' selection (narrowed to the group `filters.reason` names, none when that group is gone) and
    the groups under the other filters: (key, error, how many, newest)."""
    selection = replace(filters.selection(), status="dead")
    groups = [(reason_key(error), error, n, newest) for error, n, newest in await count_by_error(db, selection)]
    if filters.reason:
        chosen = [error for key, error, _, _ in groups if key == filters.reason]
        # A group that is gone (replayed meanwhile) matches nothing: no error is NUL.
        selection = replace(selection, last_error=chosen[0] if chosen else "\0")
    return selection, groups


async def dead_page(request: Request) -> Response:
    filters = replace(Filters.read(request.query_params), status="")  # the status is dead
    before = request.query_params.get("before", "")
    if before and not before.isdigit():
        raise HTTPException(400, f"before must be the position of an event (a whole number); got {before!r}")
    runtime = console_runtime(request)
    selection, groups = await _dead(runtime.store, filters)
    records = await list_events(runtime.store, selection, limit=PAGE_SIZE + 1, before=int(before) if before else None)
    replayed = request.query_params.get("replayed", "")
    return render(
        request,
        "dead.html",
        filters=filters,
        statuses=(),
        groups=groups,
        total=await count_events(runtime.store, selection),
        events=records[:PAGE_SIZE],
        first_page=not before,
        older=filters.query(before=records[PAGE_SIZE - 1].seq) if len(records) > PAGE_SIZE else None,
        replayed=int(replayed) if replayed.isdigit() else None,
    )


async def replay_dead(request: Request) -> Response:
    """`id` fields: those events; `all=1`: every dead event the filters in the form match. Without `confirmed=1`
    it only shows how many it would replay, and asks."""
    form = await require_change(request)
    ids = [value for value in form.getlist("id") if isinstance(value, str) and value]
    replay_all = form.get("all") == "1"
    if not ids and not replay_all:
        raise HTTPException(400, "choose the events to replay, or replay all that match the filters")
    filters = replace(Filters.read(form), status="")
    runtime = console_runtime(request)
    if ids:
        plan = await plan_replay(runtime.store, ids, EventFilter())
        targets = [record for record in plan.events if record.status == "dead"]  # not one replayed meanwhile
        chosen = len(dict.fromkeys(ids))
    else:
        selection, _ = await _dead(runtime.store, filters)
        plan = await plan_replay(runtime.store, (), selection)
        targets = plan.events
        chosen = len(plan.events) + len(plan.busy) + len(plan.pruned) + len(plan.refused)
    if form.get("confirmed") != "1":
        return render(
            request,
            "dead_confirm.html",
            filters=filters,
            ids=ids,
            replay_all=replay_all,
            targets=targets[:SHOWN_IN_CONFIRMATION],
            count=len(targets),
            left_alone=chosen - len(targets),
        )
    replayed = await replay_in_batches(runtime.store, [record.id for record in targets])
    if replayed:
        runtime.notify_new_events()
    log.info("console: replayed dead events", extra={"replayed": replayed, "chosen": len(targets)})
    return RedirectResponse(f"/dead?{filters.query(replayed=replayed)}", status_code=303)


routes: list[BaseRoute] = [
    Route("/dead", dead_page, methods=["GET"]),
    Route("/dead/replay", replay_dead, methods=["POST"]),
]
