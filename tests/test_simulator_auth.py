"""Maskinporten's JWT grant and Altinn's token exchange, as the simulator serves them over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import TestClient, new_client

ORG = "312345678"
SCOPES = ["altinn:events.subscribe", "altinn:correspondence.read"]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim: RunningSimulator) -> TestClient:
    return new_client(sim, ORG, SCOPES)


def unverified(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_metadata_names_the_issuer_and_token_endpoint(sim: RunningSimulator) -> None:
    metadata = httpx.get(sim.url + "/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == sim.issuer
    assert metadata["token_endpoint"] == sim.url + "/token"


def test_valid_grant_returns_a_signed_access_token_with_consumer(sim: RunningSimulator, client: TestClient) -> None:
    response = client.grant(client.assertion("altinn:events.subscribe"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "altinn:events.subscribe"
    assert body["expires_in"] == 120
    jwks = httpx.get(sim.url + "/jwk").json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(body["access_token"], key, algorithms=["RS256"], issuer=sim.issuer)
    assert claims["client_id"] == client.client_id
    assert claims["consumer"] == {"authority": "iso6523-actorid-upis", "ID": f"0192:{ORG}"}
    assert claims["scope"] == "altinn:events.subscribe"


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        (lambda now: {"aud": "https://test.maskinporten.no/token"}, "invalid_grant"),
        (lambda now: {"iat": now, "exp": now + 121}, "invalid_grant"),
        (lambda now: {"iat": now - 30, "exp": now + 60}, "invalid_grant"),
        (lambda now: {"sub": "someone"}, "invalid_grant"),
        (lambda now: {"iss": "no-such-client"}, "invalid_client"),
        (lambda now: {"scope": "altinn:correspondence.write"}, "invalid_scope"),
    ],
    ids=["aud-is-token-endpoint", "too-long-lived", "iat-too-old", "unknown-claim", "unknown-client", "scope"],
)
def test_bad_assertions_are_refused_as_maskinporten_does(
    client: TestClient, claims: Callable[[int], dict[str, Any]], error: str
) -> None:
    response = client.grant(client.assertion(**claims(int(time.time()))))
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_an_assertion_signed_by_another_key_is_refused(sim: RunningSimulator, client: TestClient) -> None:
    impostor = TestClient(sim, client.client_id, ORG, SCOPES, kid=client.kid)
    response = impostor.grant(impostor.assertion())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_jti_cannot_be_used_twice(client: TestClient) -> None:
    assertion = client.assertion()
    assert client.grant(assertion).status_code == 200
    second = client.grant(assertion)
    assert second.status_code == 400
    assert "jti" in second.json()["error_description"]


def test_system_user_grant_carries_authorization_details(client: TestClient) -> None:
    details = [
        {
            "type": "urn:altinn:systemuser",
            "systemuser_org": {"authority": "iso6523-actorid-upis", "ID": "0192:310000001"},
        }
    ]
    claims = unverified(client.maskinporten_token(authorization_details=details))
    detail: dict[str, Any] = claims["authorization_details"][0]  # type: ignore[index]
    assert detail["systemuser_org"]["ID"] == "0192:310000001"
    assert detail["systemuser_id"]


def test_exchange_returns_plain_text_or_json_quoted_per_accept(sim: RunningSimulator, client: TestClient) -> None:
    exchange = sim.url + "/authentication/api/v1/exchange/maskinporten"
    plain = httpx.get(exchange, headers={"Authorization": "Bearer " + client.maskinporten_token()})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain")
    quoted = httpx.get(
        exchange, headers={"Authorization": "Bearer " + client.maskinporten_token(), "Accept": "application/json"}
    )
    assert quoted.text.startswith('"') and quoted.json().count(".") == 2
    claims = unverified(plain.text)
    assert claims["iss"] == sim.url + "/authentication/api/v1/openid/"
    assert claims["urn:altinn:orgNumber"] == ORG
    assert claims["scope"] == " ".join(SCOPES)
    assert "urn:altinn:org" not in claims
    assert int(claims["exp"]) - int(claims["iat"]) == 1800  # type: ignore[call-overload]


def test_exchange_adds_the_org_code_for_a_service_owner(sim: RunningSimulator) -> None:
    owner = new_client(sim, "991825827", ["altinn:serviceowner", "altinn:events.subscribe"], service_owner="digdir")
    assert unverified(owner.altinn_token())["urn:altinn:org"] == "digdir"


def test_exchange_refuses_bad_tokens(sim: RunningSimulator, client: TestClient) -> None:
    exchange = sim.url + "/authentication/api/v1/exchange/maskinporten"
    assert httpx.get(exchange).status_code == 401
    assert httpx.get(exchange, headers={"Authorization": "Bearer " + client.altinn_token()}).status_code == 401
    assert httpx.get(exchange, headers={"Authorization": "Bearer not.a.token"}).status_code == 401


def test_platform_apis_require_an_altinn_token_and_the_scope(sim: RunningSimulator, client: TestClient) -> None:
    pull = sim.url + "/events/api/v1/events?resource=urn:altinn:resource:x&after=0"
    assert httpx.get(pull).status_code == 401
    raw = client.maskinporten_token()
    assert httpx.get(pull, headers={"Authorization": "Bearer " + raw}).status_code == 401
    no_scope = client.altinn_token("altinn:correspondence.read")
    assert httpx.get(pull, headers={"Authorization": "Bearer " + no_scope}).status_code == 403


def test_requests_seen_record_header_presence_never_values(sim: RunningSimulator, client: TestClient) -> None:
    token = client.altinn_token()
    httpx.get(
        sim.url + "/events/api/v1/subscriptions",
        headers={"Authorization": "Bearer " + token, "Ocp-Apim-Subscription-Key": "k3y"},
    )
    snapshot = sim.state_snapshot()
    [entry] = [r for r in snapshot["requests"] if r["path"] == "/events/api/v1/subscriptions"]
    assert entry["headers"]["ocp-apim-subscription-key"] is True
    assert entry["headers"]["authorization"] is True
    assert entry["status"] == 200
    assert token not in str(snapshot) and "k3y" not in str(snapshot)
