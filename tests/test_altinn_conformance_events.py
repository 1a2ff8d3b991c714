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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import TestClient, Webhook, new_client
from receiver.altinn import AltinnClients
from receiver.config import load_config
from tests.altinn_support import call, new_key, simulator_with_client, stand_in_config_file
from tests.support import wait_until

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


# --- 7.10 ---


@pytest.mark.parametrize(
    ("settings", "push_delays", "validation_delays", "timeout"),
    [
        ({}, FUNCTIONS_PUSH, FUNCTIONS_VALIDATION, 300),
        ({"push_schedule": "wolverine"}, WOLVERINE_PUSH, WOLVERINE_VALIDATION, 45),
    ],
    ids=["functions-by-default", "wolverine"],
)
def test_7_10_push_schedules_are_altinns(
    settings: dict[str, Any], push_delays: tuple[int, ...], validation_delays: tuple[int, ...], timeout: int
) -> None:
    """Functions path, Altinn's default ([AE] src/Events/appsettings.json l. 39-40 leave the Wolverine outbound and
    validation listeners off): src/Events.Functions/Services/RetryBackoffService.cs l. 19, 54-56 and 93-105 requeue a
    failed push 12 times (13 attempts, 46 h 47 min); src/Events.Functions/host.json l. 20-21 retry a failed
    validation every 30 s up to 5 attempts; src/Events.Functions/Configuration/EventsOutboundSettings.cs l. 13: 300 s.
    Wolverine path: src/Events/appsettings.json l. 49-52 and l. 59-62 through ValidationEventHandlerPolicy.cs
    l. 41-43 and OutboundEventHandlerPolicy.cs l. 39-41: 9 validation attempts in about 8 minutes, 12 push attempts
    over 34 h 47 min; src/Events/Configuration/EventsOutboundSettings.cs l. 11: 45 s.
    Each wait is at least Altinn's divided by time_scale."""
    scale = 100_000
    with (
        running_simulator(SimSettings(time_scale=scale, seed_correspondences=0, **settings)) as sim,
        Webhook(status=503) as hook,
    ):
        schedule = sim.state_snapshot()["push_schedule"]
        assert (schedule["push_delays"], schedule["validation_delays"]) == (list(push_delays), list(validation_delays))
        assert schedule["push_timeout"] == timeout
        owner = new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        resource = fresh_resource()
        body = {"endPoint": hook.url + "/down", "resourceFilter": resource}
        sub_id = subscribe(owner, body).json()["id"]

        failed_validation = wait_until(lambda: finished(sim, "validation", sub_id, "dead_letter"), message="validation")
        assert failed_validation["attempt_count"] == len(validation_delays) + 1
        assert len(hook.of_type(VALIDATION)) == len(validation_delays) + 1
        assert all(gap >= delay / scale for gap, delay in zip(gaps(failed_validation), validation_delays, strict=True))

        hook.status = 200
        assert subscribe(owner, body).json()["id"] == sub_id  # a repeated POST validates again
        wait_until(lambda: finished(sim, "validation", sub_id, "delivered"), message="the second validation")
        hook.status = 503
        doomed = event(resource)
        sim.publish_event(doomed)
        dead = wait_until(lambda: finished(sim, "event", sub_id, "dead_letter"), timeout=30, message="dead letter")
        assert dead["event_id"] == doomed["id"]
        assert dead["attempt_count"] == len(push_delays) + 1
        assert len(hook.of_type(doomed["type"])) == len(push_delays) + 1
        assert all(gap >= delay / scale for gap, delay in zip(gaps(dead), push_delays, strict=True))


def test_7_10_push_timeout_is_the_setting_and_never_scaled() -> None:
    """[AE] src/Events.Functions/Services/WebhookService.cs l. 36 and src/Events/Services/WebhookService.cs l. 38 set
    the push client's timeout to RequestTimeout seconds: real seconds, which time_scale does not shorten. With
    `push_timeout` at 0.5 s and time_scale 1000, an endpoint answering in 0.2 s is validated (a scaled timeout would
    be 0.5 ms) and one answering in 1.5 s times out."""
    settings = SimSettings(time_scale=1000, seed_correspondences=0, push_timeout=0.5)
    with running_simulator(settings) as sim, Webhook(delay=0.2) as hook:
        assert sim.state_snapshot()["push_schedule"]["push_timeout"] == 0.5
        owner = new_client(sim, OWNER_ORG, ["altinn:serviceowner", SUBSCRIBE], service_owner="digdir")
        resource = fresh_resource()
        sub_id = subscribe(owner, {"endPoint": hook.url + "/slow", "resourceFilter": resource}).json()["id"]
        validation = wait_until(lambda: finished(sim, "validation", sub_id, "delivered"), message="validation")
        assert validation["attempts"][0]["outcome"] == "200"
        hook.delay = 1.5
        sim.publish_event(event(resource))

        def first_outcome() -> str | None:
            for delivery in sim.state_snapshot()["deliveries"]:
                if delivery["kind"] == "event" and delivery["subscription_id"] == sub_id and delivery["attempts"]:
                    return str(delivery["attempts"][0]["outcome"])
            return None

        assert wait_until(first_outcome, message="the first push attempt") == "ReadTimeout"


# --- 7.13 ---


def test_7_13_exchange_refuses_a_missing_or_unreadable_token_before_the_provider(
    sim: RunningSimulator, owner: TestClient
) -> None:
    """[AA] src/Authentication/Controllers/AuthenticationController.cs l. 331-341: no token, or one
    JwtSecurityTokenHandler cannot read, is 401 (the [ApiController] maps `Unauthorized()` to ProblemDetails) before
    the provider is looked at; only a readable token reaches l. 343-353, where an unknown provider is 400 with
    Altinn's message as plain text."""
    unknown = sim.url + EXCHANGE + "google"
    missing = httpx.get(unknown)
    unreadable = httpx.get(unknown, headers={"Authorization": "Bearer ThisTokenShouldNotBeReadable"})
    for response in (missing, unreadable):
        assert response.status_code == 401
        assert response.json()["status"] == 401
    readable = httpx.get(unknown, headers={"Authorization": "Bearer " + owner.maskinporten_token()})
    assert readable.status_code == 400
    assert readable.text == (
        "Invalid token provider: google. Trusted token providers are 'Maskinporten', 'Id-porten' and 'AltinnStudio'."
    )


def test_7_13_enterprise_user_exchange_is_410_problem_details(sim: RunningSimulator, owner: TestClient) -> None:
    """[AA] src/Authentication/Controllers/AuthenticationController.cs l. 481-493: with a valid Maskinporten token,
    the `X-Altinn-EnterpriseUser-Authentication` header gets 410 Gone with a ProblemDetails body; without a valid
    token the 401 of l. 331-341 and l. 522-525 comes first."""
    url = sim.url + EXCHANGE + "maskinporten"
    enterprise = {"X-Altinn-EnterpriseUser-Authentication": "dXNlcjpwYXNz"}
    gone = httpx.get(url, headers={**enterprise, "Authorization": "Bearer " + owner.maskinporten_token()})
    assert gone.status_code == 410
    problem = gone.json()
    assert problem["status"] == 410
    assert problem["title"] == "Virksomhetsbruker is no longer available"
    assert "Systembruker" in problem["detail"]
    assert httpx.get(url, headers=enterprise).status_code == 401


# --- 7.17 ---


def test_7_17_maskinporten_refuses_an_aud_without_the_trailing_slash(sim: RunningSimulator, owner: TestClient) -> None:
    """Digdir's maskinporten_protocol_jwtgrant: `aud` must be the issuer identifier exactly
    (`https://test.maskinporten.no/`, slash included); the same assertion with the slash is granted."""
    assert sim.issuer.endswith("/")
    refused = owner.grant(owner.assertion(aud=sim.issuer.rstrip("/")))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert owner.grant(owner.assertion(aud=sim.issuer)).status_code == 200


@dataclass(frozen=True)
class IssuerWithoutSlash:
    """The simulator as a receiver config sees it, with `[maskinporten] issuer` written without its trailing slash."""

    url: str

    @property
    def issuer(self) -> str:
        return self.url


def test_7_17_receiver_config_adds_the_issuers_trailing_slash(tmp_path: Path) -> None:
    """Digdir's maskinporten_protocol_jwtgrant: the simulator's Maskinporten grants only an `aud` equal to its
    issuer, slash included, so a receiver configured with `issuer = "http://127.0.0.1:<port>"` gets its Maskinporten
    and Altinn tokens only because receiver/config.py adds the slash."""
    scopes = [SUBSCRIBE]
    with simulator_with_client(KEY, scopes, OWNER_ORG, SimSettings(seed_correspondences=0)) as sim:
        stand_in = IssuerWithoutSlash(sim.url)
        config_file = stand_in_config_file(stand_in, tmp_path, KEY, scopes=scopes)
        assert f'issuer = "{sim.url}"' in config_file.read_text()
        assert load_config(config_file).maskinporten.issuer == sim.issuer

        async def tokens(clients: AltinnClients) -> tuple[dict[str, Any], dict[str, Any]]:
            maskinporten = await clients.tokens.maskinporten()
            altinn = await clients.tokens.altinn()
            return maskinporten.claims, altinn.claims

        maskinporten, altinn = call(stand_in, tmp_path, KEY, tokens, scopes=scopes)
    assert maskinporten["iss"] == sim.issuer
    assert altinn["urn:altinn:orgNumber"] == OWNER_ORG
