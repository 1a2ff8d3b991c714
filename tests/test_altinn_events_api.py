"""The Events API client: subscriptions, and paging the pull API without following the `next` header's host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.altinn import AltinnClients, EventPage, PermanentError, Subscription
from receiver.server_thread import ServerThread
from tests.altinn_support import FakeAltinn, Handler, Recorder, Seen, call, new_key
from tests.support import DATA

KEY = new_key()
RESOURCE = "urn:altinn:resource:my-resource"
EVENTS = [{"specversion": "1.0", "id": f"id-{i}", "type": "t", "source": "s", "resource": RESOURCE} for i in range(5)]


def pull_api(next_base: str) -> Handler:
    """Altinn's pull API over EVENTS: `next` (to `next_base`, as a forged header would) only on non-empty pages."""

    async def pull(fake: FakeAltinn, request: Request) -> Response:
        after, size = request.query_params["after"], int(request.query_params["size"])
        start = 0 if after == "0" else [e["id"] for e in EVENTS].index(after) + 1
        page = EVENTS[start : start + size]
        headers = {}
        if page:
            headers["next"] = f"{next_base}/events/api/v1/events?after={page[-1]['id']}&resource={RESOURCE}&size={size}"
        return JSONResponse(page, headers=headers, media_type="application/cloudevents+json; charset=utf-8")

    return pull


def test_paging_follows_only_the_after_value_of_next_and_stops_at_an_empty_page(tmp_path: Path) -> None:
    elsewhere: list[Seen] = []

    async def pages(c: AltinnClients) -> list[EventPage]:
        return [p async for p in c.events.iter_pages(RESOURCE, "0", size=2, subject="urn:x:y", types=("a", "b"))]

    with ServerThread(Recorder(Starlette(), elsewhere)) as evil:
        api = {"GET /events/api/v1/events": pull_api(evil.url)}
        with FakeAltinn(KEY.public_key(), api=api) as fake:
            result = call(fake, tmp_path, KEY, pages)
    assert [len(p.events) for p in result] == [2, 2, 1, 0]
    assert [e["id"] for p in result for e in p.events] == [e["id"] for e in EVENTS]
    assert [p.next_after for p in result] == ["id-1", "id-3", "id-4", None]
    assert elsewhere == []
    queries = [s.query for s in fake.requests_to("/events/api/v1/events")]
    assert (
        queries[0] == "resource=urn%3Aaltinn%3Aresource%3Amy-resource&after=0&subject=urn%3Ax%3Ay&type=a&type=b&size=2"
    )
    assert [q.split("&")[1] for q in queries] == ["after=0", "after=id-1", "after=id-3", "after=id-4"]


def test_a_sample_pull_page_parses(tmp_path: Path) -> None:
    sample = json.loads((DATA / "pull-page.json").read_text())

    async def page(fake: FakeAltinn, request: Request) -> Response:
        return JSONResponse(sample)

    with FakeAltinn(KEY.public_key(), api={"GET /events/api/v1/events": page}) as fake:
        result = call(fake, tmp_path, KEY, lambda c: c.events.pull_events(RESOURCE, "0"))
    assert result == EventPage(events=sample, next_after=None)


@pytest.mark.parametrize(
    ("kwargs", "problem"), [({"size": 1001}, "size"), ({"size": 0}, "size"), ({"after": ""}, "after")]
)
def test_pull_arguments_are_checked_before_calling(tmp_path: Path, kwargs: dict[str, Any], problem: str) -> None:
    with FakeAltinn(KEY.public_key()) as fake, pytest.raises(ValueError, match=problem):
        call(fake, tmp_path, KEY, lambda c: c.events.pull_events(RESOURCE, **{"after": "0", **kwargs}))
    assert fake.seen == []


SUBSCRIPTION: dict[str, Any] = {
    "id": 1619,
    "endPoint": "https://receiver.example/events?code=abc",
    "resourceFilter": RESOURCE,
    "consumer": "/org/digdir",
    "createdBy": "/org/digdir",
    "created": "2023-04-05T13:57:11.234994Z",
    "validated": False,
    "includeSubunits": False,
}


def test_create_subscription_sends_only_the_filters_given(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []

    async def create(fake: FakeAltinn, request: Request) -> Response:
        bodies.append(await request.json())
        return JSONResponse(SUBSCRIPTION, status_code=201)

    with FakeAltinn(KEY.public_key(), api={"POST /events/api/v1/subscriptions": create}) as fake:

        async def work(c: AltinnClients) -> list[Subscription]:
            return [
                await c.events.create_subscription(SUBSCRIPTION["endPoint"], RESOURCE),
                await c.events.create_subscription(SUBSCRIPTION["endPoint"], RESOURCE, subject="urn:s", type="t"),
            ]

        first, _ = call(fake, tmp_path, KEY, work)
    assert bodies == [
        {"endPoint": SUBSCRIPTION["endPoint"], "resourceFilter": RESOURCE},
        {"endPoint": SUBSCRIPTION["endPoint"], "resourceFilter": RESOURCE, "subjectFilter": "urn:s", "typeFilter": "t"},
    ]
    assert (first.id, first.endpoint, first.resource_filter, first.subject_filter) == (
        1619,
        SUBSCRIPTION["endPoint"],
        RESOURCE,
        None,
    )
    assert (first.consumer, first.created_by, first.validated) == ("/org/digdir", "/org/digdir", False)
    assert first.raw == SUBSCRIPTION


def test_get_list_and_delete_subscriptions(tmp_path: Path) -> None:
    async def listing(fake: FakeAltinn, request: Request) -> Response:
        return JSONResponse({"count": 1, "subscriptions": [{**SUBSCRIPTION, "validated": True}]})

    async def one(fake: FakeAltinn, request: Request) -> Response:
        return JSONResponse({**SUBSCRIPTION, "id": int(request.path_params["id"])})

    async def delete(fake: FakeAltinn, request: Request) -> Response:
        return Response(status_code=200)

    api = {
        "GET /events/api/v1/subscriptions": listing,
        "GET /events/api/v1/subscriptions/{id}": one,
        "DELETE /events/api/v1/subscriptions/{id}": delete,
    }
    with FakeAltinn(KEY.public_key(), api=api) as fake:

        async def work(c: AltinnClients) -> tuple[list[Subscription], Subscription]:
            listed, got = await c.events.list_subscriptions(), await c.events.get_subscription(7)
            await c.events.delete_subscription(7)
            return listed, got

        listed, got = call(fake, tmp_path, KEY, work)
    assert [(s.id, s.validated) for s in listed] == [(1619, True)]
    assert got.id == 7
    assert [(s.method, s.path) for s in fake.seen if s.path.startswith("/events/api/v1/subscriptions/")] == [
        ("GET", "/events/api/v1/subscriptions/7"),
        ("DELETE", "/events/api/v1/subscriptions/7"),
    ]


def test_a_subscription_without_an_integer_id_is_a_permanent_error(tmp_path: Path) -> None:
    async def bad(fake: FakeAltinn, request: Request) -> Response:
        return JSONResponse({**SUBSCRIPTION, "id": "1619"})

    with (
        FakeAltinn(KEY.public_key(), api={"GET /events/api/v1/subscriptions/{id}": bad}) as fake,
        pytest.raises(PermanentError, match="integer id"),
    ):
        call(fake, tmp_path, KEY, lambda c: c.events.get_subscription(1619))
