"""`/subscriptions`: each subscription this receiver made at Altinn, its filters, whether Altinn validated it, where
its code stands in a rotation, and the catch-up cursor of its filters; and the configured ones not registered yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from receiver.config import ReceiverConfig, SubscriptionConfig
from receiver.console.render import render
from receiver.console.state import console_runtime
from receiver.store import state
from receiver.sync.subscriptions import fingerprint


@dataclass(frozen=True)
class SubscriptionRow:
    """A subscription as the page shows it. `code`: `current`, `previous` (an old code still accepted, its
    subscription waits to be deleted) or `unknown` (a code this receiver no longer accepts)."""

    record: state.SubscriptionRecord
    code: str
    delete_after: str
    wanted: bool
    cursor: state.Cursor | None


def code_standing(code_fingerprint: str, receiver: ReceiverConfig) -> str:
    """Where a stored code fingerprint stands in the receiver's secrets (the code itself is never stored)."""
    if code_fingerprint == fingerprint(receiver.secret):
        return "current"
    if any(code_fingerprint == fingerprint(old) for old in receiver.previous_secrets):
        return "previous"
    return "unknown"


async def subscriptions_page(request: Request) -> Response:
    runtime = console_runtime(request)
    config = runtime.config
    cursors = {cursor.key: cursor for cursor in await state.list_cursors(runtime.store)}
    service: dict[str, Any] = runtime.service_status().get("subscriptions", {})
    delete_after = {view.get("id"): view.get("delete_after", "") for view in service.get("subscriptions", [])}
    records = await state.list_subscriptions(runtime.store)
    rows = [
        SubscriptionRow(
            record,
            code_standing(record.code_fingerprint, config.receiver),
            delete_after.get(record.altinn_id) or "",
            record.key in config.subscriptions,
            cursors.get(record.key),
        )
        for record in records
    ]
    registered = {record.key for record in records if record.state != "superseded"}
    missing: list[tuple[SubscriptionConfig, state.Cursor | None]] = [
        (key, cursors.get(key)) for key in config.subscriptions if key not in registered
    ]
    return render(
        request,
        "subscriptions.html",
        rows=rows,
        missing=missing,
        service=service,
        public_url=config.receiver.public_url,
        catchup_enabled=config.catchup.enabled,
    )


routes: list[BaseRoute] = [Route("/subscriptions", subscriptions_page, methods=["GET"])]
