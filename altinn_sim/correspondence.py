"""The Correspondence API's read and act endpoints (correspondence contract §1.2 and §7), as sender or recipient.

Who may do what follows Altinn's handlers: the endpoint's policy checks the scope (403), the handler looks the
correspondence up (404 1001), then asks Altinn Authorization whether the caller has recipient or sender access (401
4001 when it has neither). Paths in comments are in Altinn/altinn-correspondence under `src/Altinn.Correspondence.*`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from altinn_sim.authentication import SERVICE_OWNER_SCOPE, Caller
from altinn_sim.correspondence_errors import (
    CORRESPONDENCE_NOT_FOUND,
    INVALID_DATE_RANGE,
    NO_ACCESS,
    CorrespondenceError,
    validation_problem,
)
from altinn_sim.correspondence_model import AVAILABLE_FOR_RECIPIENT, Correspondence
from altinn_sim.responses import ApiError
from receiver.timeutil import parse_iso

if TYPE_CHECKING:
    from altinn_sim.state import SimState

BASE = "/correspondence/api/v1/correspondence"
READ_SCOPE = "altinn:correspondence.read"
WRITE_SCOPE = "altinn:correspondence.write"
PORTAL_SCOPE = "altinn:portal/enduser"
ROLES = ("Recipient", "Sender", "RecipientAndSender")
MAX_IDS = 1000


def calling_as_sender(caller: Caller) -> bool:
    """Common/Helpers/ClaimsPrincipalExtensions.cs CallingAsSender (l. 71-75): the token's scope claim contains
    altinn:correspondence.write. Such a caller's GETs never record Fetched."""
    return any(WRITE_SCOPE in scope for scope in caller.scopes)


def _bypass(sim: SimState, caller: Caller, correspondence: Correspondence) -> bool:
    """AltinnAuthorizationService.EvaluateBypassConditions: a token with altinn:serviceowner whose organisation owns
    the resource passes every access check, as sender and as recipient, without asking the PDP."""
    return caller.has(SERVICE_OWNER_SCOPE) and sim.resources.owner(correspondence.resource_id) == caller.org


def recipient_access(sim: SimState, caller: Caller, correspondence: Correspondence) -> bool:
    """CheckAccessAsRecipient, simplified: the caller acts for the recipient (or is bypassed)."""
    return caller.party_subject == correspondence.recipient or _bypass(sim, caller, correspondence)


def sender_access(sim: SimState, caller: Caller, correspondence: Correspondence) -> bool:
    """CheckAccessAsSender, simplified: the sending organisation calling with the write scope (or bypassed)."""
    return (caller.has(WRITE_SCOPE) and caller.org == correspondence.sender_org) or _bypass(sim, caller, correspondence)


def _lookup(request: Request, *scopes: str) -> tuple[SimState, Caller, Correspondence]:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, *scopes)
    return sim, caller, sim.correspondences.get(request.path_params["id"])


def _as_recipient(request: Request, *scopes: str) -> tuple[SimState, Caller, Correspondence]:
    """For markasread and confirm: 401 4001 without recipient access."""
    sim, caller, correspondence = _lookup(request, *scopes)
    if not recipient_access(sim, caller, correspondence):
        raise CorrespondenceError(NO_ACCESS)
    return sim, caller, correspondence


def _with_access(request: Request, *scopes: str) -> tuple[SimState, Caller, Correspondence, bool]:
    """For overview, details, content and purge: 401 4001 with neither kind of access; else whether the caller
    has recipient access."""
    sim, caller, correspondence = _lookup(request, *scopes)
    as_recipient = recipient_access(sim, caller, correspondence)
    if not as_recipient and not sender_access(sim, caller, correspondence):
        raise CorrespondenceError(NO_ACCESS)
    return sim, caller, correspondence, as_recipient


async def overview(request: Request) -> Response:
    """GetCorrespondenceOverviewHandler: purged is 404 for everyone; a recipient not calling as sender records
    Fetched."""
    sim, caller, correspondence, as_recipient = _with_access(request, READ_SCOPE, WRITE_SCOPE)
    if correspondence.purged:
        raise CorrespondenceError(CORRESPONDENCE_NOT_FOUND)
    body = correspondence.overview_json(recipient_access=as_recipient)
    if as_recipient and not calling_as_sender(caller):
        sim.correspondences.fetch(correspondence)
    return JSONResponse(body)


async def details(request: Request) -> Response:
    """GetCorrespondenceDetailsHandler: like the overview, without its purge check."""
    sim, caller, correspondence, as_recipient = _with_access(request, READ_SCOPE, WRITE_SCOPE)
    body = correspondence.details_json(recipient_access=as_recipient)
    if as_recipient and not calling_as_sender(caller):
        sim.correspondences.fetch(correspondence)
    return JSONResponse(body)


async def content(request: Request) -> Response:
    """The overview handler with OnlyGettingContent: as recipient, Fetched and then Read (l. 95-126)."""
    sim, caller, correspondence, as_recipient = _with_access(request, READ_SCOPE)
    if correspondence.purged:
        raise CorrespondenceError(CORRESPONDENCE_NOT_FOUND)
    body = correspondence.overview_json(recipient_access=as_recipient)["content"]["messageBody"]
    if as_recipient and not calling_as_sender(caller):
        sim.correspondences.read_content(correspondence)
    return PlainTextResponse(body)


async def mark_as_read(request: Request) -> Response:
    sim, _, correspondence = _as_recipient(request, READ_SCOPE)
    sim.correspondences.mark_read(correspondence)
    return JSONResponse(correspondence.id)


async def confirm(request: Request) -> Response:
    sim, _, correspondence = _as_recipient(request, READ_SCOPE)
    sim.correspondences.confirm(correspondence)
    return JSONResponse(correspondence.id)


async def purge(request: Request) -> Response:
    """PurgeCorrespondenceHandler.CheckUserPermissions: as sender when calling as one (or without recipient
    access), else as recipient."""
    sim, caller, correspondence, as_recipient = _with_access(request, READ_SCOPE, WRITE_SCOPE)
    if not as_recipient or (calling_as_sender(caller) and sender_access(sim, caller, correspondence)):
        sim.correspondences.purge_by_sender(correspondence)
    sim.correspondences.purge_by_recipient(correspondence)
    return JSONResponse(correspondence.id)


async def download(request: Request) -> Response:
    """DownloadCorrespondenceAttachmentHandler: 1001, 2001, then 4001, then the attachment's and the
    correspondence's state."""
    sim, caller, correspondence = _lookup(request, READ_SCOPE, PORTAL_SCOPE)
    attachment = correspondence.attachment(request.path_params["attachment_id"])
    if not recipient_access(sim, caller, correspondence):
        raise CorrespondenceError(NO_ACCESS)
    sim.correspondences.download(correspondence, attachment)
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
        raise CorrespondenceError(INVALID_DATE_RANGE)
    role = params["role"]
    ids = [
        c.id
        for c in sim.correspondences.items.values()
        if c.resource_id == params["resourceId"]
        and (
            (role != "Sender" and caller.party_subject == c.recipient and c.current.status in AVAILABLE_FOR_RECIPIENT)
            or (role != "Recipient" and caller.has(WRITE_SCOPE) and caller.org == c.sender_org)
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
