"""/dead: the dead letters with their last error, grouped by it, and their replay: one, a selection, or all that
match the filters, after a confirmation that names the count (`events replay`'s rules: receiver/worker/replay.py)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.console.auth import require_change
from receiver.console.filters import Filters, page_start, reason_key
from receiver.console.render import render
from receiver.console.state import console_runtime
from receiver.store.inbox import EventFilter, escape_like, list_events
from receiver.store.interface import Database
from receiver.store.operations import count_by_error, count_events
from receiver.worker.replay import ReplayPlan, plan_replay, replay_in_batches

log = logging.getLogger("receiver.console")

PAGE_SIZE = 100
SHOWN_IN_CONFIRMATION = 20
ID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
"""A correspondence's, attachment's or event's id in an error: the part that differs between events of one cause."""
ANY_ID = "{id}"


@dataclass(frozen=True)
class Reason:
    """Dead events whose last errors differ only in the ids they name (`reading correspondence {id}: HTTP 404`):
    one cause, one group."""

    text: str
    """The last error with each id shown as `{id}`."""
    count: int
    newest: str
    """When the newest of them arrived."""

    @property
    def key(self) -> str:
        return reason_key(self.text)

    @property
    def like(self) -> str:
        """The LIKE pattern the group's errors match (any text where the ids were)."""
        return "%".join(escape_like(part) for part in self.text.split(ANY_ID))


def reasons(errors: list[tuple[str, int, str]]) -> list[Reason]:
    """`count_by_error`'s groups of one last error each, merged by cause, the largest first."""
    merged: dict[str, Reason] = {}
    for error, count, newest in errors:
        text = ID.sub(ANY_ID, error)
        known = merged.get(text)
        if known is not None:
            count, newest = known.count + count, max(known.newest, newest)
        merged[text] = Reason(text, count, newest)
    return sorted(merged.values(), key=lambda reason: (reason.count, reason.newest), reverse=True)


async def _dead(db: Database, filters: Filters) -> tuple[EventFilter | None, list[Reason]]:
    """The dead events' selection, narrowed to the group `filters.reason` names (None when that group is gone), and
    the groups under the other filters."""
    selection = replace(filters.selection(), status="dead")
    groups = reasons(await count_by_error(db, selection))
    if not filters.reason:
        return selection, groups
    chosen = [reason for reason in groups if reason.key == filters.reason]
    return (replace(selection, last_error_like=chosen[0].like) if chosen else None), groups


async def dead_page(request: Request) -> Response:
    filters = replace(Filters.read(request.query_params), status="")  # the status is dead
    before = page_start(request.query_params)
    runtime = console_runtime(request)
    selection, groups = await _dead(runtime.store, filters)
    records, total = [], 0
    if selection is not None:
        records = await list_events(runtime.store, selection, limit=PAGE_SIZE + 1, before=before)
        total = await count_events(runtime.store, selection)
    replayed = request.query_params.get("replayed", "")
    return render(
        request,
        "dead.html",
        filters=filters,
        statuses=(),
        groups=groups,
        total=total,
        events=records[:PAGE_SIZE],
        first_page=before is None,
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
        plan = await plan_replay(runtime.store, (), selection) if selection is not None else ReplayPlan()
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
    log.info("console: replayed dead events", extra={"replayed": replayed, "selected": len(targets)})
    return RedirectResponse(f"/dead?{filters.query(replayed=replayed)}", status_code=303)


routes: list[BaseRoute] = [
    Route("/dead", dead_page, methods=["GET"]),
    Route("/dead/replay", replay_dead, methods=["POST"]),
]
