"""Maskinporten: client registry, the JWT-bearer grant at POST /token, and the access tokens it issues.

Checks follow Digdir's protocol docs (correspondence contract §3.1): RS256/384/512 signature by a registered key
(`kid`, or `x5c` with a registered certificate), `aud` equal to the issuer, `iss` a known client, `exp - iat` at
most 120 s, `iat` within ±10 s, an unused `jti`, scopes the client holds, and no claims outside the documented set.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from altinn_sim.keys import SigningKey

if TYPE_CHECKING:
    from altinn_sim.state import SimState

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALGORITHMS = ("RS256", "RS384", "RS512")
ALLOWED_CLAIMS = frozenset(
    {
        "aud",
        "iss",
        "scope",
        "iat",
        "exp",
        "jti",
        "resource",
        "pid",
        "consumer_org",
        "iss_onbehalfof",
        "authorization_details",
    }
)
MAX_ASSERTION_LIFETIME = 120
CLOCK_SKEW = 10
SYSTEM_USER_TYPE = "urn:altinn:systemuser"
ORG_AUTHORITY = "iso6523-actorid-upis"


class GrantError(Exception):
    """A refused grant, answered as Maskinporten does: 400 {"error", "error_description"}."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass
class ClientKey:
    kid: str | None
    public_key: RSAPublicKey
    certificate_der: bytes | None = None


@dataclass
class Client:
    client_id: str
    org: str
    scopes: frozenset[str]
    service_owner: str | None
    keys: list[ClientKey] = field(default_factory=list)


def load_public_key(*, public_jwk: dict[str, Any] | None, pem: str | None, kid: str | None) -> ClientKey:
    """A client key from a public JWK (its own `kid` unless one is given) or a PEM public key or certificate."""
    if (public_jwk is None) == (pem is None):
        raise ValueError("give exactly one of public_jwk and pem")
    if public_jwk is not None:
        key = RSAAlgorithm.from_jwk(public_jwk)
        if not isinstance(key, RSAPublicKey):
            raise ValueError("public_jwk must be the public half of an RSA key")
        return ClientKey(kid or public_jwk.get("kid"), key)
    assert pem is not None
    data = pem.encode()
    der: bytes | None = None
    if b"BEGIN CERTIFICATE" in data:
        cert = x509.load_pem_x509_certificate(data)
        public: object = cert.public_key()
        der = cert.public_bytes(serialization.Encoding.DER)
    else:
        public = serialization.load_pem_public_key(data)
    if not isinstance(public, RSAPublicKey):
        raise ValueError("pem must hold an RSA public key or certificate")
    return ClientKey(kid, public, der)


class Maskinporten:
    def __init__(self, issuer: str, token_lifetime: float) -> None:
        self.issuer = issuer
        self.token_lifetime = token_lifetime
        self.key = SigningKey()
        self.clients: dict[str, Client] = {}
        self._used_jti: dict[str, float] = {}

    def register(
        self,
        client_id: str,
        *,
        org: str,
        scopes: list[str],
        public_jwk: dict[str, Any] | None = None,
        pem: str | None = None,
        kid: str | None = None,
        service_owner: str | None = None,
    ) -> Client:
        """Add a client, or another key and the given scopes to an existing one."""
        if not (org.isdigit() and len(org) == 9):
            raise ValueError(f"org must be a 9-digit organisation number, got {org!r}")
        key = load_public_key(public_jwk=public_jwk, pem=pem, kid=kid)
        if key.kid is None and key.certificate_der is None:
            raise ValueError("a key needs a kid (a certificate may go without)")
        if "altinn:serviceowner" in scopes and service_owner is None:
            service_owner = f"org{org}"
        client = self.clients.get(client_id)
        if client is None or client.org != org:
            client = Client(client_id, org, frozenset(scopes), service_owner)
            self.clients[client_id] = client
        else:
            client.scopes = client.scopes | frozenset(scopes)
            client.service_owner = service_owner or client.service_owner
        client.keys = [k for k in client.keys if k.kid != key.kid or key.kid is None] + [key]
        return client

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """The token response for a JWT-bearer grant, or GrantError."""
        if form.get("grant_type") != JWT_BEARER:
            raise GrantError("unsupported_grant_type", f"grant_type must be {JWT_BEARER}")
        assertion = form.get("assertion", "")
        if not assertion:
            raise GrantError("invalid_request", "Missing assertion")
        claims, client = self._verify_assertion(assertion)
        scope = self._granted_scope(claims, client)
        now = int(time.time())
        access: dict[str, Any] = {
            "iss": self.issuer,
            "client_amr": "private_key_jwt",
            "token_type": "Bearer",
            "client_id": client.client_id,
            "scope": scope,
            "consumer": {"authority": ORG_AUTHORITY, "ID": f"0192:{client.org}"},
            "iat": now,
            "exp": now + int(self.token_lifetime),
            "jti": str(uuid.uuid4()),
        }
        if "authorization_details" in claims:
            access["authorization_details"] = _system_users(claims["authorization_details"], client)
        return {
            "access_token": self.key.sign(access),
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "scope": scope,
        }

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """Claims of an access token this Maskinporten issued (10 s skew, as the exchange allows)."""
        return self.key.verify(token, issuer=self.issuer, leeway=CLOCK_SKEW)

    def _verify_assertion(self, assertion: str) -> tuple[dict[str, Any], Client]:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise GrantError("invalid_grant", f"Invalid assertion. Not a signed JWT: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise GrantError("invalid_grant", f"Invalid assertion. alg must be one of {', '.join(ALGORITHMS)}")
        if ("kid" in header) == ("x5c" in header):
            raise GrantError("invalid_grant", "Invalid assertion. The header must hold exactly one of kid and x5c")
        client = self.clients.get(str(unverified.get("iss", "")))
        if client is None:
            raise GrantError("invalid_client", f"Unknown client: {unverified.get('iss')!r}")
        key = _client_key(client, header)
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.public_key,
                algorithms=[header["alg"]],
                options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            raise GrantError("invalid_grant", "Invalid assertion. Client authentication failed.") from None
        self._check_claims(claims)
        return claims, client

    def _check_claims(self, claims: dict[str, Any]) -> None:
        unknown = sorted(set(claims) - ALLOWED_CLAIMS)
        if unknown:
            raise GrantError("invalid_grant", f"Invalid assertion. Unknown claims: {', '.join(unknown)}")
        if claims.get("aud") != self.issuer:
            raise GrantError("invalid_grant", f"Invalid assertion. aud must be the issuer {self.issuer}")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            raise GrantError("invalid_grant", "Invalid assertion. iat and exp are required")
        now = time.time()
        if abs(now - iat) > CLOCK_SKEW:
            raise GrantError("invalid_grant", "Invalid assertion. iat must be within 10 seconds of now")
        if exp - iat > MAX_ASSERTION_LIFETIME:
            raise GrantError("invalid_grant", "Invalid assertion. exp - iat must be at most 120 seconds")
        if exp < now - CLOCK_SKEW:
            raise GrantError("invalid_grant", "Invalid assertion. The assertion has expired")
        self._spend_jti(claims.get("jti"), float(exp))

    def _spend_jti(self, jti: Any, exp: float) -> None:
        if jti is None:
            return
        now = time.time()
        self._used_jti = {k: v for k, v in self._used_jti.items() if v > now - CLOCK_SKEW}
        if str(jti) in self._used_jti:
            raise GrantError("invalid_grant", "Invalid assertion. The jti has been used before")
        self._used_jti[str(jti)] = exp

    @staticmethod
    def _granted_scope(claims: dict[str, Any], client: Client) -> str:
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope.split():
            raise GrantError("invalid_scope", "Missing scope")
        refused = sorted(set(scope.split()) - client.scopes)
        if refused:
            raise GrantError("invalid_scope", f"Scope(s) not allowed for this client: {' '.join(refused)}")
        return " ".join(scope.split())


def _client_key(client: Client, header: dict[str, Any]) -> ClientKey:
    if "kid" in header:
        for key in client.keys:
            if key.kid == header["kid"]:
                return key
        raise GrantError("invalid_grant", f"Invalid assertion. Unknown kid {header['kid']!r}")
    chain = header["x5c"]
    try:
        der = base64.b64decode(chain[0], validate=True)
    except (TypeError, IndexError, ValueError):
        raise GrantError("invalid_grant", "Invalid assertion. x5c must be a list of base64 DER certificates") from None
    for key in client.keys:
        if key.certificate_der == der:
            return key
    raise GrantError("invalid_grant", "Invalid assertion. The certificate is not registered for this client")


def _system_users(details: Any, client: Client) -> list[dict[str, Any]]:
    """The token's authorization_details for a system-user grant (any org may be a customer in the simulator)."""
    if not isinstance(details, list) or len(details) != 1:
        raise GrantError("invalid_request", "authorization_details must be a list with one system user")
    detail = details[0]
    org = detail.get("systemuser_org") if isinstance(detail, dict) else None
    if (
        not isinstance(detail, dict)
        or detail.get("type") != SYSTEM_USER_TYPE
        or not isinstance(org, dict)
        or org.get("authority") != ORG_AUTHORITY
        or not str(org.get("ID", "")).startswith("0192:")
    ):
        raise GrantError(
            "invalid_authorization_details",
            f'expected [{{"type": "{SYSTEM_USER_TYPE}", "systemuser_org": '
            f'{{"authority": "{ORG_AUTHORITY}", "ID": "0192:<orgnr>"}}}}]',
        )
    orgnr = str(org["ID"]).removeprefix("0192:")
    return [
        {
            "type": SYSTEM_USER_TYPE,
            "systemuser_id": [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{client.client_id}/{orgnr}"))],
            "systemuser_org": {"authority": ORG_AUTHORITY, "ID": f"0192:{orgnr}"},
            "system_id": f"{client.client_id}_system",
        }
    ]


async def metadata(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    issuer = sim.maskinporten.issuer
    return JSONResponse(
        {
            "issuer": issuer,
            "token_endpoint": issuer + "token",
            "jwks_uri": issuer + "jwk",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "grant_types_supported": [JWT_BEARER],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "authorization_details_types_supported": [SYSTEM_USER_TYPE],
        }
    )


async def token(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    form = await request.form()
    try:
        body = sim.maskinporten.grant({k: v for k, v in form.items() if isinstance(v, str)})
    except GrantError as exc:
        return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=400)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def jwks(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    return JSONResponse(sim.maskinporten.key.jwks())


routes = [
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/token", token, methods=["POST"]),
    Route("/jwk", jwks, methods=["GET"]),
]
