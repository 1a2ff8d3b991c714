"""The Maskinporten JWT-bearer grant (correspondence contract §3.1): sign an assertion, POST it, read the token.

The assertion carries exactly the documented claims — Maskinporten answers 400 to any other — and `aud` is the
issuer, not the token URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import jwt

from receiver.altinn.errors import PermanentError
from receiver.altinn.http import AltinnHttp
from receiver.altinn.keys import SigningKey
from receiver.altinn.models import Token, unverified_claims

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 120  # Maskinporten's maximum for exp - iat
SYSTEM_USER_TYPE = "urn:altinn:systemuser"
ORG_AUTHORITY = "iso6523-actorid-upis"


def build_assertion(
    key: SigningKey,
    *,
    client_id: str,
    issuer: str,
    scopes: Sequence[str],
    now: float,
    system_user_org: str = "",
) -> str:
    """The signed grant. `system_user_org` (with or without `0192:`) asks for a system user's token for that org."""
    iat = int(now)
    claims: dict[str, Any] = {
        "aud": issuer,
        "iss": client_id,
        "scope": " ".join(scopes),
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME,
        "jti": str(uuid.uuid4()),
    }
    if system_user_org:
        org = system_user_org.removeprefix("0192:")
        claims["authorization_details"] = [
            {"type": SYSTEM_USER_TYPE, "systemuser_org": {"authority": ORG_AUTHORITY, "ID": f"0192:{org}"}}
        ]
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=key.header)


def token_endpoint(issuer: str) -> str:
    """Maskinporten's token endpoint is `token` under the issuer (`https://test.maskinporten.no/token`)."""
    return issuer.rstrip("/") + "/token"


class MaskinportenGrant:
    """Gets Maskinporten access tokens for one client."""

    def __init__(self, http: AltinnHttp, key: SigningKey, *, client_id: str, issuer: str, system_user_org: str = ""):
        self.http = http
        self.key = key
        self.client_id = client_id
        self.issuer = issuer
        self.system_user_org = system_user_org

    async def request(self, scopes: Sequence[str], now: float) -> Token:
        what = f"Maskinporten grant at {token_endpoint(self.issuer)}"
        assertion = build_assertion(
            self.key,
            client_id=self.client_id,
            issuer=self.issuer,
            scopes=scopes,
            now=now,
            system_user_org=self.system_user_org,
        )
        request = self.http.build(
            "POST",
            token_endpoint(self.issuer),
            data={"grant_type": JWT_BEARER, "assertion": assertion},
            headers={"Accept": "application/json"},
        )
        response = await self.http.fetch(request, what=what)
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = float(body["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError(f"{what}: the answer has no access_token and expires_in") from None
        if not isinstance(access_token, str) or not access_token:
            raise PermanentError(f"{what}: the access_token is empty")
        claims = unverified_claims(access_token) or {"scope": str(body.get("scope", ""))}
        return Token(access_token, expires_at=now + expires_in, obtained_at=now, claims=claims)
