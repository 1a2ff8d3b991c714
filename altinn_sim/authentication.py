"""Altinn Authentication: the Maskinporten → Altinn token exchange, and the Altinn-token check every platform
API in the simulator runs (401 without a valid token, 403 without the scope)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from altinn_sim.keys import SigningKey
from altinn_sim.maskinporten import Maskinporten
from altinn_sim.resources import org_subject
from altinn_sim.responses import ApiError, client_error, empty

if TYPE_CHECKING:
    from altinn_sim.state import SimState

OPENID_PATH = "/authentication/api/v1/openid/"
SERVICE_OWNER_SCOPE = "altinn:serviceowner"
# Claims the exchange drops from the Maskinporten token before adding its own (contract §3.2).
DROPPED_CLAIMS = ("aud", "iss", "client_amr", "sid", "token_type")
TOKEN_PROVIDERS = ("maskinporten", "id-porten", "altinnstudio")
# JwtSecurityTokenHandler.CanReadToken: the compact JWS (3 parts) or JWE (5 parts) shape, at most 250 KiB.
READABLE_TOKEN = re.compile(
    r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
)
MAX_TOKEN_SIZE = 250 * 1024
ENTERPRISE_USER_HEADER = "x-altinn-enterpriseuser-authentication"


@dataclass(frozen=True)
class Caller:
    """Who an Altinn token speaks for."""

    org: str
    """The client's own organisation number (the Maskinporten consumer)."""
    party: str
    """The organisation acted for: the system user's customer, else `org`."""
    scopes: frozenset[str]
    service_owner: str | None
    """`urn:altinn:org`: the service-owner code, present only with the altinn:serviceowner scope."""
    system_user_id: str | None
    client_id: str

    @property
    def entity(self) -> str:
        """The consumer/createdBy of a subscription, in Altinn's order of precedence."""
        if self.service_owner:
            return f"/org/{self.service_owner}"
        if self.system_user_id:
            return f"/systemuser/{self.system_user_id}"
        return f"/organisation/{self.org}"

    @property
    def party_subject(self) -> str:
        return org_subject(self.party)

    def has(self, *scopes: str) -> bool:
        """True if the token carries any of `scopes`."""
        return any(scope in self.scopes for scope in scopes)

    def to_json(self) -> dict[str, Any]:
        return {"org": self.org, "party": self.party, "service_owner": self.service_owner, "entity": self.entity}


class Authentication:
    def __init__(self, base_url: str, maskinporten: Maskinporten, token_lifetime: float) -> None:
        self.issuer = base_url + OPENID_PATH
        self.maskinporten = maskinporten
        self.token_lifetime = token_lifetime
        self.key = SigningKey()

    def exchange(self, maskinporten_token: str) -> str | None:
        """An Altinn token for a valid Maskinporten token with a consumer claim, else None."""
        try:
            claims = self.maskinporten.verify_access_token(maskinporten_token)
        except jwt.InvalidTokenError:
            return None
        consumer = claims.get("consumer")
        if not isinstance(consumer, dict) or not str(consumer.get("ID", "")).startswith("0192:"):
            return None
        org = str(consumer["ID"]).removeprefix("0192:")
        altinn = {k: v for k, v in claims.items() if k not in DROPPED_CLAIMS}
        now = int(time.time())
        altinn.update(
            {
                "urn:altinn:orgNumber": org,
                "urn:altinn:authenticatemethod": "maskinporten",
                "urn:altinn:authlevel": 3,
                "sid": str(uuid.uuid4()),
                "iss": self.issuer,
                "iat": now,
                "nbf": now,
                "exp": now + int(self.token_lifetime),
            }
        )
        client = self.maskinporten.clients.get(str(claims.get("client_id")))
        if SERVICE_OWNER_SCOPE in str(claims.get("scope", "")).split() and client and client.service_owner:
            altinn["urn:altinn:org"] = client.service_owner
        return self.key.sign(altinn)

    def caller(self, request: Request) -> Caller | None:
        """The caller behind the request's Altinn bearer token (or AltinnStudioRuntime cookie), if valid."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get("AltinnStudioRuntime")
        if not token:
            return None
        try:
            claims = self.key.verify(token, issuer=self.issuer)
        except jwt.InvalidTokenError:
            return None
        org = str(claims.get("urn:altinn:orgNumber", ""))
        party, system_user = org, None
        for detail in claims.get("authorization_details") or []:
            party = str(detail["systemuser_org"]["ID"]).removeprefix("0192:")
            system_user = str(detail["systemuser_id"][0])
        return Caller(
            org=org,
            party=party,
            scopes=frozenset(str(claims.get("scope", "")).split()),
            service_owner=claims.get("urn:altinn:org"),
            system_user_id=system_user,
            client_id=str(claims.get("client_id", "")),
        )

    def require(self, request: Request, *any_of_scopes: str, forbidden: Response | None = None) -> Caller:
        """The caller, or ApiError 401 (no valid token) / 403 (none of `any_of_scopes`)."""
        caller = self.caller(request)
        if caller is None:
            raise ApiError(empty(401))
        if any_of_scopes and not caller.has(*any_of_scopes):
            raise ApiError(forbidden or empty(403))
        return caller


def _string_result(request: Request, text: str, status: int = 200) -> Response:
    """ASP.NET's `Ok(string)` / `BadRequest(string)`: JSON-quoted for Accept: application/json, else plain text."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(text, status_code=status)
    return PlainTextResponse(text, status_code=status)


def _enterprise_user_gone() -> Response:
    """AuthenticationController.AuthenticateMaskinportenToken l. 481-493: virksomhetsbruker is discontinued."""
    body = {
        "type": "https://docs.altinn.studio",
        "title": "Virksomhetsbruker is no longer available",
        "status": 410,
        "detail": "Virksomhetsbruker (enterprise user) is no longer available. It has been replaced by Systembruker "
        "(system user) or ID-porten, depending on the use case. See https://docs.altinn.studio for migration guidance.",
    }
    return JSONResponse(body, status_code=410, media_type="application/problem+json")


async def exchange(request: Request) -> Response:
    """AuthenticationController.ExchangeExternalSystemToken, in its order: the token's presence and shape (401),
    then the provider (400), then the Maskinporten token itself (401), then the enterprise-user header (410)."""
    sim: SimState = request.app.state.sim
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token or len(token) > MAX_TOKEN_SIZE or not READABLE_TOKEN.fullmatch(token):
        return client_error(401)
    provider = request.path_params["provider"]
    if provider.lower() not in TOKEN_PROVIDERS:
        message = (
            f"Invalid token provider: {provider}. "
            "Trusted token providers are 'Maskinporten', 'Id-porten' and 'AltinnStudio'."
        )
        return _string_result(request, message, 400)
    # Only Maskinporten issues tokens here, so ID-porten's and Studio's validation would refuse any of them.
    altinn_token = sim.authentication.exchange(token) if provider.lower() == "maskinporten" else None
    if altinn_token is None:
        return client_error(401)
    if request.headers.get(ENTERPRISE_USER_HEADER):
        return _enterprise_user_gone()
    return _string_result(request, altinn_token)


async def openid_configuration(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    issuer = sim.authentication.issuer
    return JSONResponse(
        {
            "issuer": issuer,
            "jwks_uri": issuer + ".well-known/openid-configuration/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    )


async def openid_jwks(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    return JSONResponse(sim.authentication.key.jwks())


routes = [
    Route("/authentication/api/v1/exchange/{provider}", exchange, methods=["GET"]),
    Route(OPENID_PATH + ".well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route(OPENID_PATH + ".well-known/openid-configuration/jwks", openid_jwks, methods=["GET"]),
]
