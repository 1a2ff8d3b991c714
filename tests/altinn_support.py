"""Local stand-ins for Maskinporten, the Altinn token exchange and the platform APIs, for the `receiver.altinn`
tests: a real HTTP server on loopback that verifies grants as Maskinporten does and records every request."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.altinn import AltinnClients
from receiver.config import Config, load_config
from receiver.server_thread import ServerThread

ASSERTION_CLAIMS = {"aud", "iss", "scope", "iat", "exp", "jti", "authorization_details"}
ALTINN_SECRET = "altinn-test-signing-secret-0123456789"
CLIENT_ID = "test-client"
KID = "test-kid"
T = TypeVar("T")


# --- keys ---


def new_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_pem_key(key: RSAPrivateKey, path: Path, password: str = "") -> Path:
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def write_jwk(key: RSAPrivateKey, path: Path, kid: str | None = None) -> Path:
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    if kid:
        jwk["kid"] = kid
    path.write_text(json.dumps(jwk))
    return path


def certificate(subject_key: RSAPrivateKey, issuer_key: RSAPrivateKey, name: str, issuer: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )


def business_certificate(key: RSAPrivateKey) -> list[x509.Certificate]:
    """A leaf for `key` signed by a fresh CA: the chain, leaf first."""
    ca_key = new_key()
    return [
        certificate(key, ca_key, "TEST ORG 310000000", "Test CA"),
        certificate(ca_key, ca_key, "Test CA", "Test CA"),
    ]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# --- config ---


class StandIn(Protocol):
    """Maskinporten and the platform on one loopback server: `FakeAltinn` or the project's simulator."""

    @property
    def url(self) -> str: ...

    @property
    def issuer(self) -> str: ...


SERVICE_OWNER_SCOPES = ("altinn:correspondence.write", "altinn:events.subscribe", "altinn:serviceowner")
SERVICE_OWNER: dict[str, Any] = {"role": "service-owner", "scopes": SERVICE_OWNER_SCOPES}
"""`stand_in_config_file` options for a service owner holding what it needs (sending, subscribing)."""


def stand_in_config_file(
    stand_in: StandIn,
    tmp_path: Path,
    key: RSAPrivateKey,
    *,
    kid: str = KID,
    scopes: Sequence[str] = ("altinn:events.subscribe", "altinn:correspondence.read"),
    role: str = "recipient",
    receiver: str = "allow_no_secret = true",
    extra_altinn: str = "",
    extra_maskinporten: str = "",
    extra: str = "",
) -> Path:
    """tmp_path/receiver.toml for a client of `stand_in` signing grants with `key` (written to tmp_path/k.pem): by
    default a recipient's, with the scopes a recipient needs. `receiver` is the [receiver] table's body; the
    `extra_*` lines go into their tables, `extra` at the end."""
    lines = [
        "[receiver]",
        receiver,
        "[altinn]",
        f'platform_url = "{stand_in.url}"',
        f'role = "{role}"',
        extra_altinn,
        "[maskinporten]",
        f'issuer = "{stand_in.issuer}"',
        f'client_id = "{CLIENT_ID}"',
        f"scopes = {json.dumps(list(scopes))}",
        f'private_key_file = "{write_pem_key(key, tmp_path / "k.pem")}"',
        f'kid = "{kid}"' if kid else "",
        extra_maskinporten,
        extra,
    ]
    path = tmp_path / "receiver.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stand_in_config(stand_in: StandIn, tmp_path: Path, key: RSAPrivateKey, **options: Any) -> Config:
    """The config `stand_in_config_file` writes, loaded."""
    return load_config(stand_in_config_file(stand_in, tmp_path, key, **options))


def with_clients(clients: AltinnClients, work: Callable[[AltinnClients], Awaitable[T]]) -> T:
    """`work(clients)` run to its end, the clients closed afterwards."""

    async def main() -> T:
        async with clients:
            return await work(clients)

    return asyncio.run(main())


def call(
    stand_in: StandIn, tmp_path: Path, key: RSAPrivateKey, work: Callable[[AltinnClients], Awaitable[T]], **options: Any
) -> T:
    """`work` run with the clients of `stand_in_config(stand_in, tmp_path, key, **options)`."""
    return with_clients(AltinnClients.from_config(stand_in_config(stand_in, tmp_path, key, **options)), work)


@contextmanager
def simulator_with_client(
    key: RSAPrivateKey, scopes: Sequence[str], org: str, settings: SimSettings | None = None
) -> Iterator[RunningSimulator]:
    """The project's simulator with `key` registered as Maskinporten client CLIENT_ID (kid KID) of `org`."""
    with running_simulator(settings) as simulator:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        simulator.register_client(CLIENT_ID, public_jwk=jwk, kid=KID, scopes=list(scopes), org=org)
        yield simulator


# --- the fake Altinn ---

Handler = Callable[["FakeAltinn", Request], Awaitable[Response]]


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]

    @property
    def token_scope(self) -> str:
        """The `scope` claim of the bearer token the request carried (read unverified; scopes are no secret)."""
        token = self.headers.get("authorization", "").removeprefix("Bearer ")
        return str(jwt.decode(token, options={"verify_signature": False}).get("scope", ""))


class Recorder:
    """ASGI middleware that notes every request before the app sees it."""

    def __init__(self, app: ASGIApp, seen: list[Seen]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.seen.append(Seen(scope["method"], scope["path"], scope["query_string"].decode(), headers))
        await self.app(scope, receive, send)


@dataclass
class FakeAltinn:
    """Maskinporten (`POST /token`), the exchange, and whatever API routes a test adds, on one loopback server.

    The token endpoint checks the assertion as Maskinporten does: signature by the registered key (kid or x5c),
    aud = issuer, exp - iat <= 120, an unused jti, only documented claims, scopes the client holds.
    """

    public_key: Any
    api: Mapping[str, Handler] = field(default_factory=dict)
    """API routes, "METHOD /path" -> handler(fake, request); each answers 401 without a valid Altinn token."""
    quoted: bool = False
    granted_scopes: frozenset[str] = frozenset(
        {"altinn:events.subscribe", "altinn:correspondence.read", "altinn:correspondence.write", "altinn:serviceowner"}
    )
    maskinporten_lifetime: int = 120
    altinn_lifetime: int = 1800
    seen: list[Seen] = field(default_factory=list)
    assertions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    exchanges: int = 0
    revoked: set[str] = field(default_factory=set)
    _jtis: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/authentication/api/v1/exchange/maskinporten", self._exchange, methods=["GET"]),
                *(self._api_route(route, handler) for route, handler in self.api.items()),
            ]
        )
        self.server = ServerThread(Recorder(app, self.seen))
        self.url = self.server.url
        self.issuer = self.url + "/"

    def _api_route(self, route: str, handler: Handler) -> Route:
        method, path = route.split(" ", 1)

        async def endpoint(request: Request) -> Response:
            if not self.authorized(request):
                return Response(status_code=401)
            return await handler(self, request)

        return Route(path, endpoint, methods=[method])

    def __enter__(self) -> FakeAltinn:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    @property
    def grants(self) -> int:
        return len(self.assertions)

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return oauth_error("unsupported_grant_type", "wrong grant_type")
        assertion = str(form.get("assertion", ""))
        header = jwt.get_unverified_header(assertion)
        key = self.public_key
        if "x5c" in header:
            key = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0])).public_key()
        try:
            # iat is not checked against this clock: tests move the client's clock to exercise renewal
            claims = jwt.decode(
                assertion, key, algorithms=["RS256"], audience=self.issuer, options={"verify_iat": False}
            )
        except jwt.InvalidTokenError as exc:
            return oauth_error("invalid_grant", f"Invalid assertion: {exc}")
        if set(claims) - ASSERTION_CLAIMS:
            return oauth_error(
                "invalid_grant", f"Invalid assertion. Unknown claims {sorted(set(claims) - ASSERTION_CLAIMS)}"
            )
        if claims["exp"] - claims["iat"] > 120 or claims["jti"] in self._jtis:
            return oauth_error("invalid_grant", "Invalid assertion. exp too late or jti reused")
        self._jtis.add(claims["jti"])
        refused = set(claims["scope"].split()) - self.granted_scopes
        if refused:
            return oauth_error("invalid_scope", f"Scope(s) not allowed for this client: {' '.join(sorted(refused))}")
        self.assertions.append((header, claims))
        now = int(time.time())
        access = jwt.encode(
            {
                "scope": claims["scope"],
                "client_id": claims["iss"],
                "iat": now,
                "exp": now + self.maskinporten_lifetime,
                "jti": str(uuid.uuid4()),
                "consumer": {"ID": "0192:310000000"},
            },
            "maskinporten-secret-0123456789abcdef",
            algorithm="HS256",
        )
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.maskinporten_lifetime,
                "scope": claims["scope"],
            }
        )

    async def _exchange(self, request: Request) -> Response:
        token = bearer(request)
        try:
            claims = jwt.decode(token, "maskinporten-secret-0123456789abcdef", algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return Response(status_code=401)
        if token in self.revoked:
            return Response(status_code=401)
        self.exchanges += 1
        now = int(time.time())
        altinn = jwt.encode(
            {
                "scope": claims["scope"],
                "iat": now,
                "exp": now + self.altinn_lifetime,
                "jti": str(uuid.uuid4()),
                "iss": self.url + "/authentication/api/v1/openid/",
            },
            ALTINN_SECRET,
            algorithm="HS256",
        )
        return JSONResponse(altinn) if self.quoted else PlainTextResponse(altinn)

    def authorized(self, request: Request) -> bool:
        """True if the request carries an Altinn token this fake issued and did not revoke."""
        token = bearer(request)
        try:
            jwt.decode(token, ALTINN_SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return False
        return token not in self.revoked


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else ""


def oauth_error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)
