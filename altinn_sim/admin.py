"""The admin API under /_sim/: no authentication, meant for loopback use by tests, the demo and onboarding."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from altinn_sim.cloudevent import problems
from altinn_sim.correspondence_model import Attachment, Correspondence
from altinn_sim.faults import FaultRule
from altinn_sim.resources import RESOURCE_PREFIX
from altinn_sim.responses import ApiError, EscapedJSONResponse, read_json
from altinn_sim.seed import ATTACHMENT_KINDS, SEED_SENDER_ORG, TEMPLATES, make_attachments
from altinn_sim.sending import recipient_urn
from receiver.timeutil import iso_after

if TYPE_CHECKING:
    from altinn_sim.state import SimState


def bad_request(message: str) -> ApiError:
    return ApiError(JSONResponse({"error": message}, status_code=400))


def as_list(body: Any) -> list[Any]:
    """One object or a list of them."""
    return body if isinstance(body, list) else [body]


async def register_client(request: Request) -> Response:
    """Body: {"client_id", "org", "scopes": [...], "public_jwk": {...} | "pem": "...", "kid", "service_owner"}."""
    sim: SimState = request.app.state.sim
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("expected a JSON object")
    try:
        client = sim.maskinporten.register(
            str(body["client_id"]),
            org=str(body["org"]),
            scopes=[str(s) for s in body.get("scopes", [])],
            public_jwk=body.get("public_jwk"),
            pem=body.get("pem"),
            kid=body.get("kid"),
            service_owner=body.get("service_owner"),
        )
    except KeyError as exc:
        raise bad_request(f"{exc.args[0]} is required") from None
    except (ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from None
    return JSONResponse(
        {"client_id": client.client_id, "org": client.org, "service_owner": client.service_owner}, status_code=201
    )


async def set_resource_owner(request: Request) -> Response:
    """Body: {"resource_id", "owner_org", "confidential": false}: make `owner_org` the resource's service owner;
    a confidential resource's correspondences must be sent with `isConfidential` (and only they may)."""
    sim: SimState = request.app.state.sim
    body = await read_json(request)
    try:
        resource_id, owner = str(body["resource_id"]).removeprefix(RESOURCE_PREFIX), str(body["owner_org"])
    except (KeyError, TypeError):
        raise bad_request("resource_id and owner_org are required") from None
    sim.resources.owners[resource_id] = owner
    confidential = body.get("confidential") is True
    if confidential:
        sim.resources.confidential.add(resource_id)
    else:
        sim.resources.confidential.discard(resource_id)
    return JSONResponse({"resource_id": resource_id, "owner_org": owner, "confidential": confidential},
                        status_code=201)  # fmt: skip


def _correspondence(sim: SimState, spec: Any, rng: random.Random) -> Correspondence:
    if not isinstance(spec, dict) or "resource_id" not in spec or "recipient" not in spec:
        raise bad_request("each correspondence needs resource_id and recipient")
    resource_id = str(spec["resource_id"]).removeprefix(RESOURCE_PREFIX)
    recipient = recipient_urn(spec["recipient"])
    if recipient is None:
        raise bad_request(f"recipient {spec['recipient']!r} is not an organisation or person number or URN")
    template = TEMPLATES[rng.randrange(len(TEMPLATES))]
    title = str(spec.get("title") or template.title)
    count = spec.get("attachments", 0)
    if not isinstance(count, int) or not 0 <= count <= len(ATTACHMENT_KINDS):
        raise bad_request(f"attachments must be a whole number from 0 to {len(ATTACHMENT_KINDS)}")
    sender = sim.resources.owner(resource_id) or str(spec.get("sender_org") or SEED_SENDER_ORG)
    sim.resources.claim(resource_id, sender)
    confirm = bool(spec.get("is_confirmation_needed", False))
    return Correspondence(
        resource_id=resource_id,
        sender_org=sender,
        recipient=recipient,
        senders_reference=str(spec.get("senders_reference") or f"sim-{rng.randrange(10**6):06d}"),
        language=str(spec.get("language", "nb")),
        title=title,
        summary=spec.get("summary", template.summary),
        body=str(spec.get("body") or template.body),
        attachments=make_attachments(count, title, rng),
        is_confirmation_needed=confirm,
        is_confidential=resource_id in sim.resources.confidential,
        due=spec.get("due") or (iso_after(14 * 86400) if confirm else None),
    )


async def send_correspondences(request: Request) -> Response:
    """Body: one or a list of {"resource_id", "recipient", "title", "body", "summary", "attachments": n,
    "is_confirmation_needed", "due", "sender_org", "notify": true}; `?push=false` keeps the events pull-only."""
    sim: SimState = request.app.state.sim
    push = request.query_params.get("push", "true").lower() != "false"
    rng = random.Random()
    specs = as_list(await read_json(request))
    built = [(_correspondence(sim, spec, rng), bool(spec.get("notify", True))) for spec in specs]
    for correspondence, notify in built:
        sim.correspondences.add(correspondence, notify=notify, push=push)
    return JSONResponse({"ids": [c.id for c, _ in built]}, status_code=201)


def _act(action: str) -> Callable[[Request], Awaitable[Response]]:
    """Act as the recipient would: fetch if not yet fetched, then mark read or confirm (which Altinn applies a
    few seconds later, as for the API)."""

    async def endpoint(request: Request) -> Response:
        sim: SimState = request.app.state.sim
        correspondence = sim.correspondences.get(request.path_params["id"])
        if not correspondence.has("Fetched"):
            sim.correspondences.fetch(correspondence)
        getattr(sim.correspondences, action)(correspondence)
        return JSONResponse({"id": correspondence.id, "status": correspondence.current.status})

    return endpoint


def _attachment_action(
    action: Callable[[SimState, Correspondence, Attachment], bool],
) -> Callable[[Request], Awaitable[Response]]:
    """Change an attachment of a correspondence as Altinn's jobs would; `changed` is false when it already was
    expired or purged."""

    async def endpoint(request: Request) -> Response:
        sim: SimState = request.app.state.sim
        correspondence = sim.correspondences.get(request.path_params["id"])
        attachment = correspondence.attachment(request.path_params["attachment_id"])
        changed = action(sim, correspondence, attachment)
        return JSONResponse({"id": attachment.id, "status": attachment.latest.status, "changed": changed})

    return endpoint


async def publish_events(request: Request) -> Response:
    """Body: an event or a list of events; `?push=false` stores them for the pull API only. `?check=false` (a test
    facility) stores JSON objects for the pull API exactly as given, unchecked and never pushed: what a broken or
    hostile pull API could serve. Each needs a `resource` for pull pages to select it."""
    sim: SimState = request.app.state.sim
    push = request.query_params.get("push", "true").lower() != "false"
    events = as_list(await read_json(request))
    if request.query_params.get("check", "true").lower() == "false":
        if not all(isinstance(event, dict) for event in events):
            raise bad_request("check=false takes JSON objects (with a resource, for pull pages to select them)")
        for event in events:
            sim.events.register(event)
        return EscapedJSONResponse({"ids": [event.get("id") for event in events]}, status_code=201)
    for event in events:
        reason = problems(event)
        if reason:
            raise bad_request(reason)
    published = [sim.events.publish(event, push=push)["id"] for event in events]
    return JSONResponse({"ids": published}, status_code=201)


def _fault_rules(body: Any) -> list[FaultRule]:
    try:
        return [FaultRule.from_mapping(raw) for raw in as_list(body)]
    except (ValueError, TypeError, AttributeError) as exc:
        raise bad_request(str(exc)) from None


async def set_faults(request: Request) -> Response:
    """PUT replaces the rules with the body (a rule or a list); POST appends to them."""
    sim: SimState = request.app.state.sim
    rules = _fault_rules(await read_json(request))
    if request.method == "PUT":
        sim.faults.replace(rules)
    else:
        sim.faults.add(rules)
    return JSONResponse([r.to_json() for r in sim.faults.rules])


async def clear_faults(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    sim.faults.clear()
    return JSONResponse([])


async def state(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    return EscapedJSONResponse(sim.snapshot())


routes = [
    Route("/_sim/clients", register_client, methods=["POST"]),
    Route("/_sim/resources", set_resource_owner, methods=["POST"]),
    Route("/_sim/correspondences", send_correspondences, methods=["POST"]),
    Route("/_sim/correspondences/{id}/read", _act("mark_read"), methods=["POST"]),
    Route("/_sim/correspondences/{id}/confirm", _act("confirm"), methods=["POST"]),
    Route(
        "/_sim/correspondences/{id}/attachments/{attachment_id}/expire",
        _attachment_action(lambda sim, c, a: sim.correspondences.expire_attachment(c, a)),
        methods=["POST"],
    ),
    Route(
        "/_sim/correspondences/{id}/attachments/{attachment_id}/purge",
        _attachment_action(lambda sim, c, a: sim.correspondences.purge_attachment(a)),
        methods=["POST"],
    ),
    Route("/_sim/events", publish_events, methods=["POST"]),
    Route("/_sim/faults", set_faults, methods=["PUT", "POST"]),
    Route("/_sim/faults", clear_faults, methods=["DELETE"]),
    Route("/_sim/state", state, methods=["GET"]),
]
