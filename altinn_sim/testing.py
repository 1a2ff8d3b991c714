"""Helpers for tests that drive the simulator: Maskinporten clients with their own keys, the form of an upload, and
a webhook that records what it is sent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from altinn_sim.runner import RunningSimulator
from receiver.server_thread import ServerThread


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class TestClient:
    """A Maskinporten client with its own RSA key, registered in a simulator."""

    __test__ = False  # not a pytest test class

    sim: RunningSimulator
    client_id: str
    org: str
    scopes: list[str]
    kid: str = field(default_factory=lambda: str(uuid.uuid4()))
    key: rsa.RSAPrivateKey = field(default_factory=lambda: new_rsa_key())

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return jwk

    def assertion(self, scope: str | None = None, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A signed grant; keyword claims override or add to the defaults (None removes one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "aud": self.sim.issuer,
            "iss": self.client_id,
            "scope": scope or " ".join(self.scopes),
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.key, algorithm="RS256", headers=headers or {"kid": self.kid})

    def grant(self, assertion: str) -> httpx.Response:
        return httpx.post(
            self.sim.url + "/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        )

    def maskinporten_token(self, scope: str | None = None, **claims: Any) -> str:
        response = self.grant(self.assertion(scope, **claims))
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def altinn_token(self, scope: str | None = None, **claims: Any) -> str:
        response = httpx.get(
            self.sim.url + "/authentication/api/v1/exchange/maskinporten",
            headers={"Authorization": "Bearer " + self.maskinporten_token(scope, **claims)},
        )
        response.raise_for_status()
        return response.text

    def api(self, scope: str | None = None, **claims: Any) -> httpx.Client:
        """An httpx client on the simulator's platform URL that sends this client's Altinn token."""
        return httpx.Client(
            base_url=self.sim.url,
            headers={"Authorization": "Bearer " + self.altinn_token(scope, **claims)},
            timeout=30.0,
        )


def new_client(sim: RunningSimulator, org: str, scopes: list[str], *, service_owner: str | None = None) -> TestClient:
    client = TestClient(sim, f"client-{uuid.uuid4()}", org, scopes)
    sim.register_client(
        client.client_id, public_jwk=client.public_jwk(), kid=client.kid, scopes=scopes, org=org,
        service_owner=service_owner,
    )  # fmt: skip
    return client


def upload_form(
    resource_id: str, recipient: str, file_names: Iterable[str], *, title: str = "Med vedlegg", reference: str = "u-1"
) -> dict[str, str]:
    """The form fields of `POST /correspondence/api/v1/correspondence/upload` sending one message to `recipient`
    with an attachment per file name; the files go in parts named `attachments`, under the same names."""
    form = {
        "Correspondence.ResourceId": resource_id,
        "Correspondence.SendersReference": reference,
        "Correspondence.Content.Language": "nb",
        "Correspondence.Content.MessageTitle": title,
        "Correspondence.Content.MessageBody": "Se vedlegg.",
        "Recipients[0]": recipient,
    }
    for index, name in enumerate(file_names):
        form[f"Correspondence.Content.Attachments[{index}].FileName"] = name
        form[f"Correspondence.Content.Attachments[{index}].SendersReference"] = f"v{index}"
        form[f"Correspondence.Content.Attachments[{index}].DataLocationType"] = "NewCorrespondenceAttachment"
    return form


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Webhook:
    """A loopback HTTP endpoint that records every request and answers with `status` after `delay` seconds (both
    changeable); the first requests with `answers`, one each, in order, when given."""

    def __init__(self, status: int = 200, delay: float = 0.0, answers: Sequence[int] = ()) -> None:
        self.status = status
        self.delay = delay
        self.received: list[Received] = []
        self._answers = list(answers)
        self._lock = threading.Lock()
        self.server = ServerThread(Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])]))

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.received.append(Received(request.url.path, request.url.query, dict(request.headers), body))
            status = self._answers.pop(0) if self._answers else self.status
        await asyncio.sleep(self.delay)
        return Response(status_code=status)

    @property
    def url(self) -> str:
        return self.server.url

    def of_type(self, event_type: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if json.loads(r.body).get("type") == event_type]

    def __enter__(self) -> Webhook:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
