"""Altinn Events: the event log, the producers' POST, matching pushes, and the pull API (events contract §4, §5)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from altinn_sim.access import may_see
from altinn_sim.authentication import Caller
from altinn_sim.clock import Clock
from altinn_sim.cloudevent import PULL_CONTENT_TYPE, normalise, problems, validation_event
from altinn_sim.delivery import Deliverer, PushSchedule
from altinn_sim.resources import RESOURCE_PREFIX, Resources
from altinn_sim.responses import ApiError, EscapedJSONResponse, empty, problem
from altinn_sim.subscriptions import SUBSCRIBE_SCOPE, Subscription, Subscriptions

if TYPE_CHECKING:
    from altinn_sim.state import SimState

PUBLISH_SCOPE = "altinn:events.publish"
DEFAULT_PAGE = 50
MAX_PAGE = 1000


@dataclass
class StoredEvent:
    sequence: int
    event: dict[str, Any]
    registered: float


@dataclass(frozen=True)
class PullQuery:
    resource: str
    after: str
    subject: str | None
    alternative_subject: str | None
    types: tuple[str, ...]
    size: int


class Events:
    def __init__(
        self,
        events_api: str,
        clock: Clock,
        pull_lag: float,
        subscriptions: Subscriptions,
        resources: Resources,
        deliverer: Deliverer,
        schedule: PushSchedule,
    ) -> None:
        self.events_api = events_api
        self.clock = clock
        self.pull_lag = pull_lag
        self.subscriptions = subscriptions
        self.resources = resources
        self.deliverer = deliverer
        self.schedule = schedule
        self.log: list[StoredEvent] = []
        self._sequence = itertools.count(1)

    def publish(self, event: dict[str, Any], push: bool = True) -> dict[str, Any]:
        """Register an event; with `push`, deliver it to every matching, validated, authorised subscription."""
        stored = normalise(event)
        self.register(stored)
        if push:
            for subscription in self.subscriptions.matching(stored):
                if may_see(subscription.owner, self.resources, stored):
                    self.deliverer.send(
                        "event", subscription.id, subscription.endpoint, stored, self.schedule.push_delays
                    )
        return stored

    def register(self, event: dict[str, Any]) -> None:
        """Put an event in the log for the pull API as it is: `publish` without the producer's checks or a push."""
        self.log.append(StoredEvent(next(self._sequence), event, self.clock.now()))

    def validate(self, subscription: Subscription) -> None:
        """Send the validation handshake; the subscription is validated once an attempt gets a 2xx."""

        def validated() -> None:
            subscription.validated = True

        event = validation_event(self.events_api, subscription.id)
        self.deliverer.send(
            "validation", subscription.id, subscription.endpoint, event, self.schedule.validation_delays, validated
        )

    def page(self, query: PullQuery, caller: Caller) -> list[dict[str, Any]]:
        """One page as getevents.sql pages it, authorisation-filtered after paging (so possibly short)."""
        after = next((s.sequence for s in self.log if s.event.get("id") == query.after), 0)
        visible_before = self.clock.now() - self.clock.scaled(self.pull_lag)
        type_patterns = [_like(t) for t in query.types]
        selected = [
            s.event
            for s in self.log
            if s.sequence > after
            and s.registered <= visible_before
            and s.event.get("resource") == query.resource
            and (query.subject is None or s.event.get("subject") == query.subject)
            and (query.alternative_subject is None or s.event.get("alternativesubject") == query.alternative_subject)
            and (not type_patterns or any(p.fullmatch(str(s.event.get("type", ""))) for p in type_patterns))
        ][: query.size]
        return [e for e in selected if may_see(caller, self.resources, e)]


def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as a regex: % is any run of characters, _ is one character."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.DOTALL)


def _pull_query(request: Request) -> PullQuery:
    params = request.query_params
    resource = params.get("resource") or ""
    if not resource.startswith(RESOURCE_PREFIX):
        raise ApiError(problem(400, f"The 'resource' parameter must begin with {RESOURCE_PREFIX}"))
    after = params.get("after") or ""
    if not after:
        raise ApiError(problem(400, "The 'after' parameter must be defined."))
    subject = params.get("subject") or None
    alternative = request.headers.get("altinn-alternativesubject") or None
    if subject and alternative:
        raise ApiError(problem(400, "Only one of 'subject' or 'alternativeSubject' can be defined."))
    try:
        size = int(params.get("size", DEFAULT_PAGE))
    except ValueError:
        raise ApiError(problem(400, "The 'size' parameter must be a whole number.")) from None
    size = DEFAULT_PAGE if size < 1 else min(size, MAX_PAGE)
    return PullQuery(resource, after, subject, alternative, tuple(params.getlist("type")), size)


async def pull(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, SUBSCRIBE_SCOPE)
    events = sim.events.page(_pull_query(request), caller)
    headers = {}
    if events:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
        query = urlencode([("after", str(events[-1].get("id", ""))), *rest], safe=":%", errors="backslashreplace")
        headers["next"] = f"{sim.base_url}{request.url.path}?{query}"
    return EscapedJSONResponse(events, headers=headers, media_type=PULL_CONTENT_TYPE)


async def produce(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    sim.authentication.require(request, PUBLISH_SCOPE)
    try:
        event = await request.json()
    except ValueError:
        return problem(400, "The body must be one CloudEvent as a JSON object.")
    reason = problems(event)
    if reason:
        return problem(400, reason)
    sim.events.publish(event)
    return empty(200)


routes = [
    Route("/events/api/v1/events", pull, methods=["GET"]),
    Route("/events/api/v1/events", produce, methods=["POST"]),
]
