"""The token chain against a local Maskinporten and exchange: the assertion, the grant, the exchange, the cache."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from receiver.altinn import AltinnClients, PermanentError
from receiver.altinn.keys import load_signing_key
from receiver.altinn.maskinporten import build_assertion
from receiver.config import ConfigError, MaskinportenConfig
from tests.altinn_support import (
    CLIENT_ID,
    KID,
    FakeAltinn,
    business_certificate,
    new_key,
    stand_in_config,
    with_clients,
    write_pem_key,
)

KEY = new_key()
SCOPES = ("altinn:events.subscribe", "altinn:correspondence.read")


def clients_for(fake: FakeAltinn, tmp_path: Path, **options: Any) -> AltinnClients:
    return AltinnClients.from_config(stand_in_config(fake, tmp_path, KEY, **options))


# --- the assertion ---


def decode(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    claims = jwt.decode(assertion, KEY.public_key(), algorithms=["RS256"], audience="https://test.maskinporten.no/")
    return jwt.get_unverified_header(assertion), claims


def test_assertion_has_exactly_the_documented_claims(tmp_path: Path) -> None:
    key = load_signing_key(MaskinportenConfig(kid="k1", private_key_file=write_pem_key(KEY, tmp_path / "k.pem")))
    before = time.time()
    header, claims = decode(
        build_assertion(key, client_id="cid", issuer="https://test.maskinporten.no/", scopes=SCOPES, now=time.time())
    )
    assert header["alg"] == "RS256" and header["kid"] == "k1" and "x5c" not in header
    assert set(claims) == {"aud", "iss", "scope", "iat", "exp", "jti"}
    assert claims["aud"] == "https://test.maskinporten.no/"
    assert claims["iss"] == "cid"
    assert claims["scope"] == " ".join(SCOPES)
    assert abs(claims["iat"] - before) <= 2
    assert 0 < claims["exp"] - claims["iat"] <= 120
    assert uuid.UUID(claims["jti"]).version == 4


@pytest.mark.parametrize("configured", ["310000000", "0192:310000000"])
def test_system_user_grant_names_the_org_with_the_0192_prefix(tmp_path: Path, configured: str) -> None:
    key = load_signing_key(MaskinportenConfig(kid="k1", private_key_file=write_pem_key(KEY, tmp_path / "k.pem")))
    assertion = build_assertion(
        key,
        client_id="cid",
        issuer="https://test.maskinporten.no/",
        scopes=SCOPES,
        now=time.time(),
        system_user_org=configured,
    )
    _, claims = decode(assertion)
    assert set(claims) == {"aud", "iss", "scope", "iat", "exp", "jti", "authorization_details"}
    assert claims["authorization_details"] == [
        {
            "type": "urn:altinn:systemuser",
            "systemuser_org": {"authority": "iso6523-actorid-upis", "ID": "0192:310000000"},
        }
    ]


def test_every_assertion_has_a_fresh_jti(tmp_path: Path) -> None:
    key = load_signing_key(MaskinportenConfig(kid="k1", private_key_file=write_pem_key(KEY, tmp_path / "k.pem")))
    jtis = {
        decode(
            build_assertion(key, client_id="c", issuer="https://test.maskinporten.no/", scopes=SCOPES, now=time.time())
        )[1]["jti"]
        for _ in range(5)
    }
    assert len(jtis) == 5


def test_certificate_grant_sends_x5c_and_no_kid(tmp_path: Path) -> None:
    chain = business_certificate(KEY)
    cert_file = tmp_path / "chain.pem"
    cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    with FakeAltinn(public_key=None) as fake:  # the fake must take the key from x5c
        clients = clients_for(fake, tmp_path, kid="", extra_maskinporten=f'certificate_file = "{cert_file}"')
        with_clients(clients, lambda c: c.tokens.maskinporten_token())
    header, _ = fake.assertions[0]
    assert "kid" not in header
    assert base64.b64decode(header["x5c"][0]) == chain[0].public_bytes(serialization.Encoding.DER)


# --- the grant and the exchange ---


def test_grant_posts_to_the_issuers_token_endpoint_and_is_accepted(tmp_path: Path) -> None:
    with FakeAltinn(KEY.public_key()) as fake:
        token = with_clients(clients_for(fake, tmp_path), lambda c: c.tokens.maskinporten_token())
    ((header, claims),) = fake.assertions
    assert header["kid"] == KID and claims["iss"] == CLIENT_ID and claims["aud"] == fake.issuer
    assert set(jwt.decode(token, options={"verify_signature": False})["scope"].split()) == set(SCOPES)
    assert [s.method for s in fake.requests_to("/token")] == ["POST"]
    assert fake.requests_to("/token")[0].headers["content-type"] == "application/x-www-form-urlencoded"


def test_refused_grant_is_permanent_and_says_why(tmp_path: Path) -> None:
    with FakeAltinn(KEY.public_key()) as fake, pytest.raises(PermanentError) as err:
        with_clients(clients_for(fake, tmp_path), lambda c: c.tokens.maskinporten_token(["altinn:not-granted"]))
    assert err.value.status == 400
    assert err.value.error_code == "invalid_scope"
    assert "altinn:not-granted" in str(err.value)


@pytest.mark.parametrize("quoted", [False, True])
def test_exchange_answer_plain_or_json_quoted_gives_the_bare_jwt(tmp_path: Path, quoted: bool) -> None:
    with FakeAltinn(KEY.public_key(), quoted=quoted) as fake:
        token = with_clients(clients_for(fake, tmp_path), lambda c: c.tokens.altinn_token())
    assert not token.startswith('"') and not token.endswith('"')
    claims = jwt.decode(token, "altinn-test-signing-secret-0123456789", algorithms=["HS256"])
    assert set(claims["scope"].split()) == set(SCOPES)
    exchange = fake.requests_to("/authentication/api/v1/exchange/maskinporten")
    assert len(exchange) == 1 and exchange[0].method == "GET"
    assert exchange[0].headers["authorization"].startswith("Bearer ey")


def test_many_concurrent_callers_share_one_grant_and_one_exchange(tmp_path: Path) -> None:
    async def fifty(c: AltinnClients) -> set[str]:
        return set(await asyncio.gather(*(c.tokens.altinn_token() for _ in range(50))))

    with FakeAltinn(KEY.public_key()) as fake:
        tokens = with_clients(clients_for(fake, tmp_path), fifty)
    assert len(tokens) == 1
    assert fake.grants == 1
    assert fake.exchanges == 1


def test_tokens_are_cached_per_scope_set(tmp_path: Path) -> None:
    async def work(c: AltinnClients) -> list[str]:
        return [
            await c.tokens.altinn_token(["b:x", "a:y"]),
            await c.tokens.altinn_token(["a:y", "b:x", "a:y"]),
            await c.tokens.altinn_token(["a:y"]),
        ]

    with FakeAltinn(KEY.public_key(), granted_scopes=frozenset({"a:y", "b:x"})) as fake:
        first, same, other = with_clients(clients_for(fake, tmp_path), work)
    assert first == same != other
    assert fake.grants == 2 and fake.exchanges == 2


def test_token_is_renewed_before_it_expires(tmp_path: Path) -> None:
    """Altinn allows no clock skew: a token is renewed a minute (or a quarter of its life) before its exp."""
    skew = [0.0]
    with FakeAltinn(KEY.public_key(), altinn_lifetime=600, maskinporten_lifetime=600) as fake:
        config = stand_in_config(fake, tmp_path, KEY)
        clients = AltinnClients.from_config(config, clock=lambda: time.time() + skew[0])

        async def work(c: AltinnClients) -> list[str]:
            first = await c.tokens.altinn_token()
            skew[0] = 600 - 70  # 70 s before exp: still handed out
            still = await c.tokens.altinn_token()
            skew[0] = 600 - 50  # 50 s before exp: inside the renewal margin
            return [first, still, await c.tokens.altinn_token()]

        first, still, renewed = with_clients(clients, work)
    assert first == still != renewed
    assert fake.exchanges == 2
    assert (
        jwt.decode(renewed, options={"verify_signature": False})["exp"]
        > jwt.decode(first, options={"verify_signature": False})["exp"] - 1
    )


def test_exchange_401_gets_a_new_maskinporten_token_and_retries_once(tmp_path: Path) -> None:
    async def work(c: AltinnClients) -> str:
        stale = await c.tokens.maskinporten_token()
        fake.revoked.add(stale)
        return await c.tokens.altinn_token()

    with FakeAltinn(KEY.public_key()) as fake:
        token = with_clients(clients_for(fake, tmp_path), work)
    assert token
    assert fake.grants == 2
    assert len(fake.requests_to("/authentication/api/v1/exchange/maskinporten")) == 2


def test_no_scopes_is_a_config_error(tmp_path: Path) -> None:
    with FakeAltinn(KEY.public_key()) as fake, pytest.raises(ConfigError) as err:
        with_clients(clients_for(fake, tmp_path, scopes=()), lambda c: c.tokens.altinn_token())
    assert err.value.key == "maskinporten.scopes"
    assert fake.seen == []
