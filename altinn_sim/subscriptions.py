"""The subscriptions API, `/events/api/v1/subscriptions`, with Altinn Events' rules (events contract §1)."""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from altinn_sim.access import owns
from altinn_sim.authentication import Caller
from altinn_sim.resources import RESOURCE_PREFIX
from altinn_sim.responses import ApiError, empty, json_string, read_json, validation_problem
from receiver.config import URN_PATTERN
from receiver.timeutil import now_iso

if TYPE_CHECKING:
    from altinn_sim.state import SimState

SUBSCRIBE_SCOPE = "altinn:events.subscribe"
APP_RESOURCE_PREFIX = RESOURCE_PREFIX + "app_"
APPS_DOMAIN = "apps.altinn.no"
DEFAULT_PORTS = {"http": 80, "https": 443}
# What .NET's Uri leaves unescaped in a path, query and fragment (RFC 3986 pchar, plus "%" already escaped).
PATH_SAFE = "/%:@!$&'()*+,;=-._~"
QUERY_SAFE = PATH_SAFE + "?"
FIELDS = {
    "endpoint": "endPoint",
    "sourcefilter": "sourceFilter",
    "subjectfilter": "subjectFilter",
    "resourcefilter": "resourceFilter",
    "alternativesubjectfilter": "alternativeSubjectFilter",
    "typefilter": "typeFilter",
    "includesubunits": "includeSubunits",
}


@dataclass
class Subscription:
    id: int
    endpoint: str
    resource_filter: str | None
    source_filter: str | None
    subject_filter: str | None
    type_filter: str | None
    include_subunits: bool
    owner: Caller
    created: str
    validated: bool = False

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes a POST a repeat of this subscription (findsubscription.sql)."""
        return (
            self.resource_filter, self.source_filter, self.subject_filter, self.type_filter,
            self.owner.entity, self.endpoint, self.include_subunits,
        )  # fmt: skip

    def matches(self, event: dict[str, Any]) -> bool:
        """Exact matches, as getsubscriptions.sql; an empty-string filter is stored and so never matches."""
        return (
            self.validated
            and self.resource_filter == event.get("resource")
            and (self.subject_filter is None or self.subject_filter == event.get("subject"))
            and (self.type_filter is None or self.type_filter == event.get("type"))
            and (self.source_filter is None or str(event.get("source", "")).startswith(self.source_filter))
        )

    def to_json(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "endPoint": self.endpoint,
            "sourceFilter": self.source_filter,
            "subjectFilter": self.subject_filter,
            "resourceFilter": self.resource_filter,
            "typeFilter": self.type_filter,
            "consumer": self.owner.entity,
            "createdBy": self.owner.entity,
            "created": self.created,
            "validated": self.validated,
            "includeSubunits": self.include_subunits,
        }
        return {k: v for k, v in body.items() if v is not None}


class Subscriptions:
    def __init__(self) -> None:
        self.items: dict[int, Subscription] = {}
        self._ids = itertools.count(1)

    def add_or_find(self, candidate: Subscription) -> Subscription:
        for existing in self.items.values():
            if existing.identity == candidate.identity:
                return existing
        candidate.id = next(self._ids)
        self.items[candidate.id] = candidate
        return candidate

    def matching(self, event: dict[str, Any]) -> list[Subscription]:
        return [s for s in self.items.values() if s.matches(event)]


def endpoint_allowed(url: str, require_https: bool) -> bool:
    """Absolute https; with `require_https` off, also http to a loopback host (the simulator's allowance)."""
    parts = urlsplit(url)
    if not parts.netloc or not parts.hostname:
        return False
    try:
        _ = parts.port  # a port that is no number raises, as .NET's Uri refuses it
    except ValueError:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or require_https:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def absolute_uri(url: str) -> str:
    """`url` as .NET's `Uri.AbsoluteUri` writes it: scheme and host lower-cased, the scheme's default port dropped,
    an empty path as `/`, dot segments removed, spaces and non-ASCII percent-encoded. Altinn stores and matches a
    subscription's endpoint (and source filter) in this form (SubscriptionRepository.cs l. 46, 51, 70, 75)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    userinfo, at, _ = parts.netloc.rpartition("@")
    path = quote(_remove_dot_segments(parts.path or "/"), safe=PATH_SAFE)
    query = quote(parts.query, safe=QUERY_SAFE)
    fragment = quote(parts.fragment, safe=QUERY_SAFE)
    return urlunsplit((parts.scheme, userinfo + at + host, path, query, fragment))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path: `/a/./b/../c` is `/a/c`."""
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(kept) > 1:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")
    return "/".join(kept)


def _fields(body: Any) -> dict[str, Any]:
    """Request properties by canonical name; ASP.NET binds JSON property names case-insensitively."""
    if not isinstance(body, dict):
        raise ApiError(validation_problem({"$": ["The JSON value could not be converted to a subscription."]}))
    fields: dict[str, Any] = {}
    for key, value in body.items():
        name = FIELDS.get(key.lower())
        if name is None or value is None:
            continue
        expected = bool if name == "includeSubunits" else str
        if not isinstance(value, expected):
            message = f"The JSON value could not be converted to {expected.__name__}."
            raise ApiError(validation_problem({f"$.{key}": [message]}))
        fields[name] = value
    return fields


def _is_app(resource_filter: str | None, source_filter: str | None) -> bool:
    """SubscriptionController.IsAppSubscription: the app prefix in any letter case, or a source on the apps domain."""
    if resource_filter and resource_filter.lower().startswith(APP_RESOURCE_PREFIX):
        return True
    host = urlsplit(source_filter or "").hostname or ""
    return host.endswith(APPS_DOMAIN)


def _generic_problem(fields: dict[str, Any]) -> str | None:
    """GenericSubscriptionService's checks, in its order."""
    if not fields.get("resourceFilter"):
        return "Resource filter is required."
    if "sourceFilter" in fields:
        return "Source filter is not supported for subscriptions on this resource."
    if "alternativeSubjectFilter" in fields:
        return "AlternativeSubject filter is not supported for subscriptions on this resource."
    if fields.get("includeSubunits") and "subjectFilter" not in fields:
        return "IncludeSubunits requires a subject filter."
    return None


async def create(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request)
    fields = _fields(await read_json(request))
    endpoint = fields.get("endPoint", "")
    if not endpoint_allowed(endpoint, sim.settings.require_https):
        return json_string(400, "Missing or invalid endpoint to push events towards")
    resource_filter, source_filter = fields.get("resourceFilter"), fields.get("sourceFilter")
    if source_filter is not None and not (urlsplit(source_filter).scheme == "https" and urlsplit(source_filter).netloc):
        return json_string(400, "SourceFilter must be an absolute URL with the https scheme.")
    is_app = _is_app(resource_filter, source_filter)
    # SubscriptionController.Post l. 76-79: the scope is checked before the resource filter and the generic rules.
    if not is_app and not caller.has(SUBSCRIBE_SCOPE):
        return empty(403)
    if resource_filter is not None and not URN_PATTERN.fullmatch(resource_filter):
        return json_string(400, "Resource filter must be a valid urn")
    if not is_app:
        problem = _generic_problem(fields)
        if problem:
            return json_string(400, problem)
    resource_id = (resource_filter or "").removeprefix(RESOURCE_PREFIX)
    subject_filter = fields.get("subjectFilter")
    if not (owns(caller, sim.resources, resource_id, claim=True) or subject_filter == caller.party_subject):
        return json_string(403, f"Not authorized to create a subscription for resource {resource_filter}.")
    subscription = sim.subscriptions.add_or_find(
        Subscription(
            id=0,
            endpoint=absolute_uri(endpoint),
            resource_filter=resource_filter,
            source_filter=None if source_filter is None else absolute_uri(source_filter),
            subject_filter=subject_filter,
            type_filter=fields.get("typeFilter"),
            include_subunits=fields.get("includeSubunits", False),
            owner=caller,
            created=now_iso(),
        )
    )
    sim.events.validate(subscription)
    # Altinn builds Location with the singular "subscription", which is no route; clients read the id instead.
    return JSONResponse(
        subscription.to_json(),
        status_code=201,
        headers={"Location": f"/events/api/v1/subscription/{subscription.id}"},
    )


async def list_own(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request)
    own = [s.to_json() for s in sim.subscriptions.items.values() if s.owner.entity == caller.entity]
    return JSONResponse({"count": len(own), "subscriptions": own})


def _own_subscription(request: Request) -> Subscription:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request)
    subscription = sim.subscriptions.items.get(int(request.path_params["id"]))
    if subscription is None:
        raise ApiError(empty(404))
    if subscription.owner.entity != caller.entity:
        raise ApiError(empty(403))
    return subscription


async def get_one(request: Request) -> Response:
    return JSONResponse(_own_subscription(request).to_json())


async def delete(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    del sim.subscriptions.items[_own_subscription(request).id]
    return Response(status_code=200)


routes = [
    Route("/events/api/v1/subscriptions", create, methods=["POST"]),
    Route("/events/api/v1/subscriptions/", create, methods=["POST"]),
    Route("/events/api/v1/subscriptions", list_own, methods=["GET"]),
    Route("/events/api/v1/subscriptions/", list_own, methods=["GET"]),
    Route("/events/api/v1/subscriptions/{id:int}", get_one, methods=["GET"]),
    Route("/events/api/v1/subscriptions/{id:int}", delete, methods=["DELETE"]),
]
