"""The Correspondence API's read and act endpoints (correspondence contract §1.2), as sender or recipient."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from altinn_sim.authentication import Caller
from altinn_sim.correspondence_model import (
    AVAILABLE_FOR_RECIPIENT,
    NOT_FOUND,
    Correspondence,
    CorrespondenceError,
)
from altinn_sim.responses import ApiError, problem, validation_problem
from receiver.timeutil import parse_iso

if TYPE_CHECKING:
    from altinn_sim.state import SimState

BASE = "/correspondence/api/v1/correspondence"
READ_SCOPE = "altinn:correspondence.read"
WRITE_SCOPE = "altinn:correspondence.write"
PORTAL_SCOPE = "altinn:portal/enduser"
ROLES = ("Recipient", "Sender", "RecipientAndSender")
MAX_IDS = 1000


def error_response(error: CorrespondenceError) -> Response:
    return problem(error.status, error.message, error_code=error.code)


async def correspondence_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CorrespondenceError)
    return error_response(exc)


def is_recipient(caller: Caller, correspondence: Correspondence) -> bool:
    return caller.has(READ_SCOPE, PORTAL_SCOPE) and caller.party_subject == correspondence.recipient


def is_sender(caller: Caller, correspondence: Correspondence) -> bool:
    return caller.has(WRITE_SCOPE) and caller.org == correspondence.sender_org


def _lookup(request: Request, *scopes: str) -> tuple[SimState, Caller, Correspondence]:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, *scopes)
    return sim, caller, sim.correspondences.get(request.path_params["id"])


def _as_recipient(request: Request, *scopes: str) -> tuple[SimState, Correspondence]:
    """The correspondence for its recipient; 404 1001 for anyone else or when not available to recipients."""
    sim, caller, correspondence = _lookup(request, *scopes)
    if not is_recipient(caller, correspondence) or correspondence.current.status not in AVAILABLE_FOR_RECIPIENT:
        raise CorrespondenceError(*NOT_FOUND)
    return sim, correspondence


async def overview(request: Request) -> Response:
    return _view(request, details=False)


async def details(request: Request) -> Response:
    return _view(request, details=True)


def _view(request: Request, *, details: bool) -> Response:
    """As recipient, answer with the status before this call, then record Fetched (as Altinn's handler does)."""
    sim, caller, correspondence = _lookup(request, READ_SCOPE, WRITE_SCOPE)
    if is_recipient(caller, correspondence):
        body = correspondence.details_json() if details else correspondence.overview_json()
        sim.correspondences.fetch(correspondence)
        return JSONResponse(body)
    if is_sender(caller, correspondence):
        return JSONResponse(correspondence.details_json() if details else correspondence.overview_json())
    raise CorrespondenceError(*NOT_FOUND)


async def content(request: Request) -> Response:
    sim, correspondence = _as_recipient(request, READ_SCOPE)
    sim.correspondences.read_content(correspondence)
    return PlainTextResponse(correspondence.body)


async def mark_as_read(request: Request) -> Response:
    sim, correspondence = _as_recipient(request, READ_SCOPE)
    sim.correspondences.mark_read(correspondence)
    return JSONResponse(correspondence.id)


async def confirm(request: Request) -> Response:
    sim, correspondence = _as_recipient(request, READ_SCOPE)
    sim.correspondences.confirm(correspondence)
    return JSONResponse(correspondence.id)


async def purge(request: Request) -> Response:
    sim, caller, correspondence = _lookup(request, READ_SCOPE, WRITE_SCOPE)
    if is_recipient(caller, correspondence):
        sim.correspondences.purge_by_recipient(correspondence)
        return JSONResponse(correspondence.id)
    if is_sender(caller, correspondence):
        # Every correspondence here is published at once, and a sender may purge only before publishing.
        raise CorrespondenceError(1013, 400, "Sender cannot delete correspondence that has been published")
    raise CorrespondenceError(*NOT_FOUND)


async def download(request: Request) -> Response:
    sim, correspondence = _as_recipient(request, READ_SCOPE, PORTAL_SCOPE)
    attachment = sim.correspondences.attachment(correspondence, request.path_params["attachment_id"])
    filename = json.dumps(attachment.file_name)
    return Response(
        attachment.data,
        media_type=attachment.data_type,
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


async def list_ids(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, READ_SCOPE, WRITE_SCOPE)
    params = request.query_params
    errors: dict[str, list[str]] = {}
    if not params.get("resourceId"):
        errors["resourceId"] = ["The resourceId field is required."]
    if params.get("role") not in ROLES:
        errors["role"] = [f"The role field is required and must be one of {', '.join(ROLES)}."]
    try:
        since = parse_iso(params["from"]) if params.get("from") else None
        until = parse_iso(params["to"]) if params.get("to") else None
    except ValueError:
        errors["from"] = ["from and to must be date-times."]
        since = until = None
    if errors:
        raise ApiError(validation_problem(errors))
    if since and until and since > until:
        raise CorrespondenceError(1027, 400, "From date cannot be after to date")
    role = params["role"]
    ids = [
        c.id
        for c in sim.correspondences.items.values()
        if c.resource_id == params["resourceId"]
        and (
            (role != "Sender" and is_recipient(caller, c) and c.current.status in AVAILABLE_FOR_RECIPIENT)
            or (role != "Recipient" and is_sender(caller, c))
        )
        and (since is None or parse_iso(c.created) >= since)
        and (until is None or parse_iso(c.created) <= until)
        and params.get("status") in (None, c.current.status)
        and params.get("sendersReference") in (None, c.senders_reference)
        and params.get("idempotentKey") in (None, c.idempotent_key)
    ]
    return JSONResponse({"ids": ids[:MAX_IDS]})


routes = [
    Route(BASE, list_ids, methods=["GET"]),
    Route(BASE + "/{id}", overview, methods=["GET"]),
    Route(BASE + "/{id}/details", details, methods=["GET"]),
    Route(BASE + "/{id}/content", content, methods=["GET"]),
    Route(BASE + "/{id}/markasread", mark_as_read, methods=["POST"]),
    Route(BASE + "/{id}/confirm", confirm, methods=["POST"]),
    Route(BASE + "/{id}/purge", purge, methods=["DELETE"]),
    Route(BASE + "/{id}/attachment/{attachment_id}/download", download, methods=["GET"]),
]
