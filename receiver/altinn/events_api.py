"""The Altinn Events API (events contract §1, §5): subscriptions, and pulling events by cursor.

Paging follows the `next` header only by its `after` value: the next request is rebuilt on the configured
platform URL, so a `next` pointing at another host is never followed. A page with no events carries no `next`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict, Unpack
from urllib.parse import parse_qs, urlsplit

from receiver.altinn.errors import PermanentError
from receiver.altinn.http import PlatformSession, json_body
from receiver.altinn.models import EventPage, Subscription

SUBSCRIPTIONS_PATH = "/events/api/v1/subscriptions"
EVENTS_PATH = "/events/api/v1/events"
MAX_PAGE_SIZE = 1000


class PullFilters(TypedDict, total=False):
    """The pull API's optional parameters: `subject`, `type` (repeated) and the page `size` (at most 1000)."""

    subject: str | None
    types: Sequence[str]
    size: int


def next_after(header: str | None) -> str | None:
    """The `after` value of a `next` header (a full URL); everything else in it is ignored."""
    if not header:
        return None
    values = parse_qs(urlsplit(header.strip()).query).get("after")
    return values[0] if values and values[0] else None


class EventsApi:
    def __init__(self, session: PlatformSession) -> None:
        self.session = session

    async def create_subscription(
        self, endpoint: str, resource: str, *, subject: str | None = None, type: str | None = None
    ) -> Subscription:
        """POST a subscription (idempotent at Altinn for the same filters). Empty filters are left out, never `""`."""
        body: dict[str, Any] = {"endPoint": endpoint, "resourceFilter": resource}
        if subject:
            body["subjectFilter"] = subject
        if type:
            body["typeFilter"] = type
        response = await self.session.request(
            "POST", SUBSCRIPTIONS_PATH, what=f"creating a subscription for {resource}", json=body
        )
        return Subscription.from_json(json_body(response, "subscription"))

    async def get_subscription(self, subscription_id: int) -> Subscription:
        response = await self.session.request(
            "GET", f"{SUBSCRIPTIONS_PATH}/{int(subscription_id)}", what=f"reading subscription {subscription_id}"
        )
        return Subscription.from_json(json_body(response, "subscription"))

    async def list_subscriptions(self) -> list[Subscription]:
        response = await self.session.request("GET", SUBSCRIPTIONS_PATH, what="listing subscriptions")
        body = json_body(response, "subscription list")
        items = body.get("subscriptions") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise PermanentError("listing subscriptions: expected {count, subscriptions: [...]}")
        return [Subscription.from_json(item) for item in items]

    async def delete_subscription(self, subscription_id: int) -> None:
        await self.session.request(
            "DELETE", f"{SUBSCRIPTIONS_PATH}/{int(subscription_id)}", what=f"deleting subscription {subscription_id}"
        )

    async def pull_events(
        self,
        resource: str,
        after: str,
        *,
        subject: str | None = None,
        types: Sequence[str] = (),
        size: int = MAX_PAGE_SIZE,
    ) -> EventPage:
        """One page of events registered after the event id `after` ("0" for the start of retention)."""
        if not resource:
            raise ValueError("resource is required (urn:altinn:resource:...)")
        if not after:
            raise ValueError('after is required: the id of the last event processed, or "0"')
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"size must be from 1 to {MAX_PAGE_SIZE}, got {size}")
        params: list[tuple[str, str]] = [("resource", resource), ("after", after)]
        if subject:
            params.append(("subject", subject))
        params.extend(("type", t) for t in types)
        params.append(("size", str(size)))
        response = await self.session.request(
            "GET", EVENTS_PATH, what=f"pulling events for {resource} after {after}", params=params
        )
        events = json_body(response, "event page")
        if not isinstance(events, list):
            raise PermanentError("pulling events: expected a JSON array of CloudEvents")
        return EventPage(events=events, next_after=next_after(response.headers.get("next")))

    async def iter_pages(self, resource: str, after: str, **filters: Unpack[PullFilters]) -> AsyncIterator[EventPage]:
        """Pages from `after` on, up to and including the first empty one (or one whose `next` does not go on)."""
        while True:
            page = await self.pull_events(resource, after, **filters)
            yield page
            if not page.events or page.next_after is None or page.next_after == after:
                return
            after = page.next_after
