"""Altinn Authentication: the Maskinporten → Altinn token exchange, and the Altinn-token check every platform
API in the simulator runs (401 without a valid token, 403 without the scope)."""

from __future__ import annotations

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
from altinn_sim.responses import ApiError, empty

if TYPE_CHECKING:
    from altinn_sim.state import SimState

OPENID_PATH = "/authentication/api/v1/openid/"
SERVICE_OWNER_SCOPE = "altinn:serviceowner"
# Claims the exchange drops from the Maskinporten token before adding its own (contract §3.2).
DROPPED_CLAIMS = ("aud", "iss", "client_amr", "sid", "token_type")


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


async def exchange(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    if request.path_params["provider"].lower() != "maskinporten":
        return JSONResponse("Invalid token provider", status_code=400)
    if "x-altinn-enterpriseuser-authentication" in request.headers:
        return empty(410)
    header = request.headers.get("authorization", "")
    altinn_token = sim.authentication.exchange(header[7:].strip()) if header[:7].lower() == "bearer " else None
    if altinn_token is None:
        return empty(401)
    # ASP.NET's Ok(string) honours Accept: JSON-quoted for application/json, plain text otherwise.
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(altinn_token)
    return PlainTextResponse(altinn_token)


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
