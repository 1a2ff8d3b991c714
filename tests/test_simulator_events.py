"""Subscriptions, the validation handshake, push delivery with retries and dead letters, and the pull API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.cloudevent import event_time
from altinn_sim.testing import TestClient, Webhook, new_client
from receiver.server_thread import ServerThread
from tests.support import wait_until

OWNER_ORG = "991825827"
RECIPIENT_ORG = "312345678"
OTHER_ORG = "398765432"
SUBSCRIBE = "altinn:events.subscribe"
SUBSCRIPTIONS = "/events/api/v1/subscriptions"
RECIPIENT_SUBJECT = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    # 10000x: the default 13-attempt push schedule (about 47 h) takes about 17 s; the 30 s pull lag 3 ms.
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as running:
        yield running


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.fixture(scope="module")
def owner(sim: RunningSimulator) -> TestClient:
    return new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")


@pytest.fixture(scope="module")
def recipient(sim: RunningSimulator) -> TestClient:
    return new_client(sim, RECIPIENT_ORG, [SUBSCRIBE, "altinn:correspondence.read"])


def fresh_resource() -> str:
    return f"urn:altinn:resource:sim-test-{uuid.uuid4().hex[:12]}"


def event(
    resource: str, subject: str = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}", **extra: Any
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "resource": resource,
        "resourceinstance": str(uuid.uuid4()),
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "specversion": "1.0",
        "type": "no.altinn.correspondence.correspondencepublished",
        "subject": subject,
        "time": event_time(),
        **extra,
    }


def subscribe(client: TestClient, body: dict[str, Any]) -> httpx.Response:
    with client.api() as api:
        return api.post(SUBSCRIPTIONS, json=body)


def pull(api: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get("/events/api/v1/events", params=params).json()
    return events


def validated(client: TestClient, subscription_id: int) -> bool:
    with client.api() as api:
        return bool(api.get(f"{SUBSCRIPTIONS}/{subscription_id}").json()["validated"])


def test_subscription_is_created_validated_and_idempotent(owner: TestClient, webhook: Webhook) -> None:
    resource = fresh_resource()
    body = {"endPoint": f"{webhook.url}/events?code=s3cret", "resourceFilter": resource}
    first = subscribe(owner, body)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["consumer"] == created["createdBy"] == "/org/digdir"
    assert isinstance(created["validated"], bool)
    assert "subjectFilter" not in created and "typeFilter" not in created
    assert first.headers["location"] == f"/events/api/v1/subscription/{created['id']}"
    wait_until(lambda: validated(owner, created["id"]), message="validation")
    [handshake, *_] = [r for r in webhook.of_type("platform.events.validatesubscription")
                       if json.loads(r.body)["source"].endswith(f"/subscriptions/{created['id']}")]  # fmt: skip
    assert handshake.body.startswith(b'{"specversion":"1.0","id":')
    assert handshake.headers["content-type"] == "application/json; charset=utf-8"
    assert handshake.query == "code=s3cret"
    before = len(webhook.of_type("platform.events.validatesubscription"))
    again = subscribe(owner, {"EndPoint": body["endPoint"], "resourcefilter": resource})
    assert again.status_code == 201
    assert again.json()["id"] == created["id"]
    wait_until(
        lambda: len(webhook.of_type("platform.events.validatesubscription")) > before, message="second handshake"
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"endPoint": "https://example.com/x", "resourceFilter": "urn:altinn:resource:Upper-Case"}, 400,
         "Resource filter must be a valid urn"),
        ({"endPoint": "https://example.com/x"}, 400, "Resource filter is required."),
        ({"endPoint": "https://example.com/x", "resourceFilter": "urn:altinn:resource:r1",
          "sourceFilter": "https://platform.altinn.no/correspondence"}, 400,
         "Source filter is not supported for subscriptions on this resource."),
        ({"endPoint": "https://example.com/x", "resourceFilter": "urn:altinn:resource:r1",
          "alternativeSubjectFilter": "/organisation/312345678"}, 400,
         "AlternativeSubject filter is not supported for subscriptions on this resource."),
        ({"endPoint": "https://example.com/x", "resourceFilter": "urn:altinn:resource:r1", "includeSubunits": True},
         400, "IncludeSubunits requires a subject filter."),
        ({"endPoint": "http://example.com/x", "resourceFilter": "urn:altinn:resource:r1"}, 400,
         "Missing or invalid endpoint to push events towards"),
        ({"endPoint": "https://example.com/x", "resourceFilter": "urn:altinn:resource:r1"}, 403,
         "Not authorized to create a subscription for resource urn:altinn:resource:r1."),
        ({"endPoint": "https://example.com/x", "resourceFilter": "urn:altinn:resource:r1",
          "subjectFilter": f"urn:altinn:organization:identifier-no:{OTHER_ORG}"}, 403,
         "Not authorized to create a subscription for resource urn:altinn:resource:r1."),
    ],
    ids=["upper-case-urn", "no-resource", "source-filter", "alt-subject", "subunits", "remote-http", "no-subject",
         "foreign-subject"],
)  # fmt: skip
def test_subscription_rules(recipient: TestClient, body: dict[str, Any], status: int, message: str) -> None:
    response = subscribe(recipient, body)
    assert response.status_code == status
    assert response.json() == message


def test_require_https_refuses_loopback_http() -> None:
    with running_simulator(SimSettings(require_https=True, seed_correspondences=0)) as strict:
        client = new_client(strict, RECIPIENT_ORG, [SUBSCRIBE])
        body = {"endPoint": "http://127.0.0.1:9/x", "resourceFilter": fresh_resource(),
                "subjectFilter": f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"}  # fmt: skip
        assert subscribe(client, body).status_code == 400


def test_subscribing_without_the_scope_is_forbidden_with_an_empty_body(sim: RunningSimulator) -> None:
    client = new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read"])
    response = subscribe(client, {"endPoint": "https://example.com/x", "resourceFilter": fresh_resource()})
    assert response.status_code == 403
    assert response.content == b""


def test_subscriptions_are_listed_and_deleted_by_their_creator_only(
    owner: TestClient, recipient: TestClient, webhook: Webhook
) -> None:
    resource = fresh_resource()
    own = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"
    created = subscribe(recipient, {"endPoint": webhook.url + "/r", "resourceFilter": resource, "subjectFilter": own})
    sub_id = created.json()["id"]
    with recipient.api() as api:
        listing = api.get(SUBSCRIPTIONS).json()
        assert sub_id in [s["id"] for s in listing["subscriptions"]]
        assert listing["count"] == len(listing["subscriptions"])
    with owner.api() as api:
        assert api.get(f"{SUBSCRIPTIONS}/{sub_id}").status_code == 403
        assert api.delete(f"{SUBSCRIPTIONS}/{sub_id}").status_code == 403
    with recipient.api() as api:
        deleted = api.delete(f"{SUBSCRIPTIONS}/{sub_id}")
        assert deleted.status_code == 200 and deleted.content == b""
        assert api.get(f"{SUBSCRIPTIONS}/{sub_id}").status_code == 404


def test_push_goes_to_matching_authorised_subscriptions_in_altinns_format(
    sim: RunningSimulator, owner: TestClient, recipient: TestClient
) -> None:
    resource = fresh_resource()
    own = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"
    with Webhook() as owner_hook, Webhook() as recipient_hook, Webhook() as empty_filter_hook:
        owner_sub = subscribe(owner, {"endPoint": owner_hook.url + "/o", "resourceFilter": resource}).json()
        recipient_sub = subscribe(
            recipient, {"endPoint": recipient_hook.url + "/r", "resourceFilter": resource, "subjectFilter": own}
        ).json()
        blank = subscribe(
            owner, {"endPoint": empty_filter_hook.url + "/e", "resourceFilter": resource, "typeFilter": ""}
        ).json()
        for client, sub in ((owner, owner_sub), (recipient, recipient_sub), (owner, blank)):
            wait_until(partial(validated, client, sub["id"]), message="validation")
        mine = event(resource, extension="kept")
        theirs = event(resource, subject=f"urn:altinn:organization:identifier-no:{OTHER_ORG}")
        sim.publish_event(mine)
        sim.publish_event(theirs)
        published = "no.altinn.correspondence.correspondencepublished"
        wait_until(lambda: len(owner_hook.of_type(published)) == 2, message="both events at the owner")
        wait_until(lambda: len(recipient_hook.of_type(published)) == 1, message="own event at the recipient")
        [pushed] = recipient_hook.of_type(published)
        assert json.loads(pushed.body) == mine
        assert pushed.body.startswith(b'{"specversion":"1.0",') and b" " not in pushed.body.replace(b"T", b"")
        assert pushed.headers["content-type"] == "application/json; charset=utf-8"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", json.loads(pushed.body)["time"])
        assert empty_filter_hook.of_type(published) == []


def test_failing_endpoint_gets_thirteen_attempts_then_a_dead_letter() -> None:
    # Altinn's default push path (Functions) makes 13 attempts; 100000x: its 46 h 47 min of retries take about 1.7 s.
    with running_simulator(SimSettings(time_scale=100000, seed_correspondences=0)) as sim, Webhook() as hook:
        owner = new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        resource = fresh_resource()
        sub = subscribe(owner, {"endPoint": hook.url + "/down", "resourceFilter": resource}).json()
        wait_until(lambda: validated(owner, sub["id"]), message="validation")
        hook.status = 503
        doomed = event(resource)
        sim.publish_event(doomed)

        def dead() -> list[dict[str, Any]]:
            return [d for d in sim.state_snapshot()["dead_letters"] if d["event_id"] == doomed["id"]]

        [letter] = wait_until(dead, timeout=20, interval=0.1, message="dead letter")
        assert letter["attempt_count"] == 13
        assert {a["outcome"] for a in letter["attempts"]} == {"503"}
        assert len(hook.of_type(doomed["type"])) == 13


# Altinn Events' ListenerCount per pod (events contract §4.6): how many pushes of a kind it has in flight at once.
ALTINN_LISTENERS = 20


class GatedEndpoint:
    """A loopback endpoint that holds each request until `gate` are in flight together (or `patience` seconds pass),
    then answers 200, and remembers the most requests it had in flight. Holding them makes the count independent of
    how fast a loaded machine starts the pushes: a sender with fewer than `gate` at once waits out its patience."""

    def __init__(self, gate: int, patience: float) -> None:
        self.gate = gate
        self.patience = patience
        self.inflight = self.most = self.answered = 0
        self._full = asyncio.Event()
        self.server = ServerThread(Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])]))

    async def _handle(self, request: Request) -> Response:
        self.inflight += 1
        self.most = max(self.most, self.inflight)
        if self.inflight >= self.gate:
            self._full.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.patience)
        self.inflight -= 1
        if self.inflight == 0:
            self._full.clear()
        self.answered += 1
        return Response(status_code=200)


def test_pushes_run_concurrently_on_altinns_twenty_listeners(sim: RunningSimulator, owner: TestClient) -> None:
    slow = GatedEndpoint(gate=ALTINN_LISTENERS, patience=2.0)
    with slow.server:
        resource = fresh_resource()
        sub = subscribe(owner, {"endPoint": slow.server.url + "/slow", "resourceFilter": resource}).json()
        wait_until(lambda: validated(owner, sub["id"]), message="validation")
        before = slow.answered
        sim.admin.post("/events", json=[event(resource) for _ in range(100)]).raise_for_status()
        wait_until(lambda: slow.answered - before >= 100, message="100 pushes answered")
    assert slow.most == ALTINN_LISTENERS  # concurrent, yet never more than Altinn's listeners per pod


def test_pull_pages_with_next_only_when_non_empty(sim: RunningSimulator, owner: TestClient) -> None:
    resource = fresh_resource()
    sim.set_resource_owner(resource, OWNER_ORG)
    events = [event(resource, type=f"no.altinn.correspondence.t{i}") for i in range(5)]
    for e in events:
        sim.publish_event(e, push=False)
    with owner.api() as api:
        first = wait_until(
            lambda: (
                (r := api.get("/events/api/v1/events", params={"resource": resource, "after": "0", "size": 2}))
                and r.json()
                and r
            ),
            message="events past the lag",
        )
        assert first.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
        assert [e["id"] for e in first.json()] == [e["id"] for e in events[:2]]
        assert first.headers["next"].startswith(f"{sim.url}/events/api/v1/events?after={events[1]['id']}&")
        rest = api.get(first.headers["next"]).json()
        assert [e["id"] for e in rest] == [e["id"] for e in events[2:4]]
        last = api.get("/events/api/v1/events", params={"resource": resource, "after": events[4]["id"]})
        assert last.json() == [] and "next" not in last.headers
        unknown = api.get("/events/api/v1/events", params={"resource": resource, "after": str(uuid.uuid4())})
        assert len(unknown.json()) == 5
        typed = api.get(
            "/events/api/v1/events",
            params=[("resource", resource), ("after", "0"), ("type", "%.t1"), ("type", "no.altinn.correspondence.t3")],
        )
        assert [e["type"] for e in typed.json()] == ["no.altinn.correspondence.t1", "no.altinn.correspondence.t3"]


def test_pull_hides_other_parties_events_and_respects_the_lag() -> None:
    with running_simulator(SimSettings(time_scale=1, pull_lag=30, seed_correspondences=0)) as slow:
        owner_here = new_client(slow, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        resource = fresh_resource()
        slow.set_resource_owner(resource, OWNER_ORG)
        slow.publish_event(event(resource), push=False)
        with owner_here.api() as api:
            assert api.get("/events/api/v1/events", params={"resource": resource, "after": "0"}).json() == []
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as fast:
        owner_here = new_client(fast, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        recipient_here = new_client(fast, RECIPIENT_ORG, [SUBSCRIBE])
        resource = fresh_resource()
        fast.set_resource_owner(resource, OWNER_ORG)
        mine, theirs = event(resource), event(resource, subject=f"urn:altinn:organization:identifier-no:{OTHER_ORG}")
        fast.publish_event(mine, push=False)
        fast.publish_event(theirs, push=False)
        params = {"resource": resource, "after": "0"}
        with owner_here.api() as api:
            wait_until(lambda: len(pull(api, params)) == 2, message="both events for the service owner")
        with recipient_here.api() as api:
            assert [e["id"] for e in pull(api, params)] == [mine["id"]]


@pytest.mark.parametrize(
    ("params", "headers", "detail"),
    [
        ({"after": "0"}, {}, "The 'resource' parameter must begin with urn:altinn:resource:"),
        ({"resource": "urn:altinn:resource:x"}, {}, "The 'after' parameter must be defined."),
        ({"resource": "urn:altinn:resource:x", "after": "0", "subject": "s"},
         {"Altinn-AlternativeSubject": "/organisation/1"},
         "Only one of 'subject' or 'alternativeSubject' can be defined."),
    ],
    ids=["resource", "after", "subject-and-alternative"],
)  # fmt: skip
def test_pull_parameter_errors_are_problem_details(
    recipient: TestClient, params: dict[str, str], headers: dict[str, str], detail: str
) -> None:
    with recipient.api() as api:
        response = api.get("/events/api/v1/events", params=params, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"] == detail


def test_producers_post_needs_the_publish_scope_and_a_valid_event(sim: RunningSimulator) -> None:
    producer = new_client(sim, OWNER_ORG, ["altinn:events.publish"])
    bystander = new_client(sim, OTHER_ORG, [SUBSCRIBE])
    good = event(fresh_resource())
    headers = {"Content-Type": "application/cloudevents+json"}
    with bystander.api() as api:
        assert api.post("/events/api/v1/events", content=json.dumps(good), headers=headers).status_code == 403
    with producer.api() as api:
        assert api.post("/events/api/v1/events", content=json.dumps(good), headers=headers).status_code == 200
        bad = {k: v for k, v in good.items() if k != "resource"}
        assert api.post("/events/api/v1/events", content=json.dumps(bad), headers=headers).status_code == 400
    assert good["id"] in [e["id"] for e in sim.state_snapshot()["events"]]
