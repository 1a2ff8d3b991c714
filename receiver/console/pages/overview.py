"""`/`: the receiver at a glance — ready or not and why, events per minute over the last hour, the backlog, the dead,
the subscriptions, catch-up and the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from receiver.console.chart import minute_chart
from receiver.console.formats import age, human_size
from receiver.console.render import render
from receiver.console.state import console_runtime
from receiver.runtime import Runtime
from receiver.store import state
from receiver.store.inbox import count_by_status
from receiver.store.operations import UNPROCESSED, oldest_event
from receiver.store.overview import per_minute, store_bytes
from receiver.timeutil import now

STATUSES = ("pending", "processing", "retrying", "done", "skipped", "dead")
"""The backlog's order: what waits, what runs, what is finished."""


@dataclass(frozen=True)
class Readiness:
    """Whether a push would be stored now, and every reason it would not (or that something needs a look)."""

    ready: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]


def readiness(runtime: Runtime) -> Readiness:
    """What `/readyz` decides on (the store writable, not draining), from what the runtime knows without a probe
    write, and the background services' errors as warnings: they never decide readiness."""
    writer = runtime.writer
    reasons = [f"store: {problem}" for problem in (writer.broken or writer.last_error,) if problem]
    if not writer.alive:
        reasons.append("store: the inbox writer has stopped")
    if runtime.draining:
        reasons.append("shutting down: draining")
    warnings = []
    for name, status in runtime.service_status().items():
        for key in ("start_error", "error", "status_error", "warning"):
            if status.get(key):
                warnings.append(f"{name}: {status[key]}")
    return Readiness(not reasons, tuple(reasons), tuple(warnings))


async def overview(request: Request) -> Response:
    runtime = console_runtime(request)
    db = runtime.store
    counts = await count_by_status(db)
    oldest = await oldest_event(db, UNPROCESSED)
    services = runtime.service_status()
    context: dict[str, Any] = {
        "readiness": readiness(runtime),
        "chart": minute_chart(await per_minute(db, now())),
        "backlog": [(status, counts.get(status, 0)) for status in STATUSES]
        + [(status, n) for status, n in sorted(counts.items()) if status not in STATUSES],
        "oldest": oldest,
        "oldest_age": age(oldest.received_at) if oldest else "",
        "dead": counts.get("dead", 0),
        "subscriptions": await state.list_subscriptions(db),
        "subscriptions_state": services.get("subscriptions", {}),
        "cursors": await state.list_cursors(db),
        "catchup": services.get("catchup", {}),
        "last_catchup_at": await state.get_fact(db, state.LAST_CATCHUP_AT) or "",
        "store": {
            "backend": runtime.backend.name,
            "location": runtime.backend.location,
            "bytes": await store_bytes(db),
        },
        "age": age,
        "size": human_size,
    }
    return render(request, "overview.html", **context)


routes: list[BaseRoute] = [Route("/", overview, methods=["GET"])]
