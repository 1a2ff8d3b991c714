"""The simulator against Altinn's own code, one test per Events and authentication fact of the correspondence
contract's §7 (7.8, 7.9, 7.10, 7.13, 7.17), each over real HTTP.

Every docstring names the file and lines of Altinn's source the test encodes: [AE] is Altinn/altinn-events at
d7232ac8 (2026-08-20), [AA] Altinn/altinn-authentication at ad4f6f36 (2026-07-17).
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import TestClient, new_client
from tests.altinn_support import new_key

OWNER_ORG = "991825827"
RECIPIENT_ORG = "312345678"
SUBSCRIBE = "altinn:events.subscribe"
SUBSCRIPTIONS = "/events/api/v1/subscriptions"
EXCHANGE = "/authentication/api/v1/exchange/"
VALIDATION = "platform.events.validatesubscription"
KEY = new_key()

# Altinn's waits in its own seconds, read in [AE] (see test_7_10_push_schedules_are_altinns).
FUNCTIONS_PUSH = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200, 43200)
FUNCTIONS_VALIDATION = (30, 30, 30, 30)
WOLVERINE_PUSH = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200)
WOLVERINE_VALIDATION = (1, 5, 10, 30, 60, 120, 120, 120)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as running:
        yield running


@pytest.fixture(scope="module")
def owner(sim: RunningSimulator) -> TestClient:
    return new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")


def fresh_resource() -> str:
    return f"urn:altinn:resource:conformance-{uuid.uuid4().hex[:12]}"


def subscribe(client: TestClient, body: dict[str, Any], scope: str | None = None) -> httpx.Response:
    with client.api(scope) as api:
        return api.post(SUBSCRIPTIONS, json=body)


def event(resource: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "no.altinn.correspondence.correspondencepublished",
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "resource": resource,
        "resourceinstance": str(uuid.uuid4()),
        "subject": f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}",
    }


def finished(sim: RunningSimulator, kind: str, subscription_id: int, status: str) -> dict[str, Any] | None:
    """The first delivery of `kind` to the subscription that reached `status`, from GET /_sim/state."""
    for delivery in sim.state_snapshot()["deliveries"]:
        if delivery["kind"] == kind and delivery["subscription_id"] == subscription_id and delivery["status"] == status:
            return dict(delivery)
    return None


def gaps(delivery: dict[str, Any]) -> list[float]:
    """Seconds between one attempt's end and the next one's."""
    times = [dt.datetime.fromisoformat(a["at"]) for a in delivery["attempts"]]
    return [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]


# --- 7.8 ---


def test_7_8_endpoint_is_stored_and_matched_as_absolute_uri(owner: TestClient) -> None:
    """[AE] src/Events/Repository/SubscriptionRepository.cs l. 51 (insert) and l. 75 (FindSubscription) store and
    match `EndPoint.AbsoluteUri`: .NET lower-cases scheme and host and drops the scheme's default port, so the
    same endpoint written two ways is one subscription. A port that is not the default still makes another one.
    (Loopback hosts, so the validation attempts go nowhere.)"""
    resource = fresh_resource()
    first = subscribe(owner, {"endPoint": "HTTPS://LocalHost:443/x?code=A", "resourceFilter": resource})
    again = subscribe(owner, {"endPoint": "https://localhost/x?code=A", "resourceFilter": resource})
    other_port = subscribe(owner, {"endPoint": "https://localhost:8443/x?code=A", "resourceFilter": resource})
    assert [first.status_code, again.status_code, other_port.status_code] == [201, 201, 201]
    assert first.json()["endPoint"] == "https://localhost/x?code=A"
    assert again.json()["id"] == first.json()["id"]
    assert other_port.json()["id"] != first.json()["id"]
    with owner.api() as api:
        mine = [s for s in api.get(SUBSCRIPTIONS).json()["subscriptions"] if s["resourceFilter"] == resource]
    assert sorted(s["endPoint"] for s in mine) == ["https://localhost/x?code=A", "https://localhost:8443/x?code=A"]


# --- 7.9 ---


@pytest.mark.parametrize(
    "body",
    [
        {"endPoint": "https://localhost/x", "resourceFilter": "urn:altinn:resource:Upper-Case"},
        {"endPoint": "https://localhost/x"},
        {"endPoint": "https://localhost/x", "resourceFilter": "urn:altinn:resource:r1", "includeSubunits": True},
    ],
    ids=["invalid-urn", "no-resource-filter", "subunits-without-subject"],
)
def test_7_9_subscribing_without_the_scope_is_403_with_an_empty_body_first(sim: RunningSimulator, body: Any) -> None:
    """[AE] src/Events/Controllers/SubscriptionController.cs l. 76-79: a non-app subscription without
    `altinn:events.subscribe` is `Forbid()` (403, no body) before the resource filter's URN check (l. 81-84) and
    GenericSubscriptionService's rules (l. 88-96). The same body with the scope gets its 400, so the 403 is the
    scope's. (Only the endpoint and source-filter checks, l. 64-72, come before it; see the next test.)"""
    client = new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read", SUBSCRIBE])
    refused = subscribe(client, body, scope="altinn:correspondence.read")
    assert refused.status_code == 403
    assert refused.content == b""
    with_scope = subscribe(client, body)
    assert with_scope.status_code == 400
    assert isinstance(with_scope.json(), str)


def test_7_9_only_the_endpoint_check_comes_before_the_scope(sim: RunningSimulator) -> None:
    """[AE] src/Events/Controllers/SubscriptionController.cs l. 64-67 answer a missing or non-https endpoint with
    400 before the scope is looked at (l. 76)."""
    client = new_client(sim, RECIPIENT_ORG, ["altinn:correspondence.read"])
    response = subscribe(client, {"endPoint": "http://example.com/x", "resourceFilter": fresh_resource()})
    assert response.status_code == 400
    assert response.json() == "Missing or invalid endpoint to push events towards"
