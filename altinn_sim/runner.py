"""The simulator on a loopback port in a background thread, with a client for its admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from altinn_sim.app import create_app
from altinn_sim.settings import SimSettings
from altinn_sim.state import SimState
from receiver.server_thread import ServerThread, free_port

HOST = "127.0.0.1"
# Long enough for in-flight requests to finish, short enough that a hanging-request fault cannot stall a test.
GRACEFUL_SHUTDOWN_SECONDS = 2


class SimulatorAdmin:
    """A client for the admin API (`/_sim`) of the simulator at `url`, wherever it runs (this process or another)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=url + "/_sim", timeout=30.0)

    @property
    def issuer(self) -> str:
        """The Maskinporten issuer: the `aud` of client assertions."""
        return self.url + "/"

    def _post(self, path: str, body: Any, **params: str) -> Any:
        response = self.admin.post(path, json=body, params=params)
        if response.status_code >= 400:
            raise RuntimeError(f"simulator admin {path}: {response.status_code} {response.text}")
        return response.json()

    def register_client(
        self,
        client_id: str,
        public_jwk: dict[str, Any] | None = None,
        pem: str | None = None,
        kid: str | None = None,
        *,
        scopes: list[str],
        org: str,
        service_owner: str | None = None,
    ) -> None:
        """Register a Maskinporten client by its public JWK or PEM (key or certificate)."""
        body = {"client_id": client_id, "public_jwk": public_jwk, "pem": pem, "kid": kid, "scopes": scopes,
                "org": org, "service_owner": service_owner}  # fmt: skip
        self._post("/clients", {k: v for k, v in body.items() if v is not None})

    def send_correspondence(
        self, resource_id: str, recipient: str, title: str | None = None, attachments: int = 0, **fields: Any
    ) -> str:
        """Send one correspondence as the resource's service owner; returns its id. See docs/simulator.md."""
        body = {"resource_id": resource_id, "recipient": recipient, "title": title, "attachments": attachments,
                **fields}  # fmt: skip
        ids: list[str] = self._post("/correspondences", {k: v for k, v in body.items() if v is not None})["ids"]
        return ids[0]

    def set_resource_owner(self, resource_id: str, owner_org: str, *, confidential: bool = False) -> None:
        """Make `owner_org` the resource's service owner; a `confidential` resource needs `isConfidential`."""
        self._post("/resources", {"resource_id": resource_id, "owner_org": owner_org, "confidential": confidential})

    def publish_event(self, event: dict[str, Any], push: bool = True) -> None:
        self._post("/events", event, push=str(push).lower())

    def publish_unchecked(self, events: list[Any]) -> None:
        """Put JSON objects in the pull API's log as they are, without the producer's checks (`?check=false`): a
        test facility for what a broken pull API could serve. Sent as ASCII JSON, so lone surrogates travel."""
        response = self.admin.post(
            "/events", content=json.dumps(events).encode("ascii"), params={"check": "false"},
            headers={"content-type": "application/json"},
        )  # fmt: skip
        if response.status_code >= 400:
            raise RuntimeError(f"simulator admin /events: {response.status_code} {response.text}")

    def state_snapshot(self) -> dict[str, Any]:
        response = self.admin.get("/state")
        response.raise_for_status()
        snapshot: dict[str, Any] = response.json()
        return snapshot

    def close(self) -> None:
        self.admin.close()


class RunningSimulator(SimulatorAdmin):
    """The simulator in a background thread of this process (`state` is its live state), with its admin client."""

    def __init__(self, server: ServerThread, state: SimState) -> None:
        super().__init__(server.url)
        self.server = server
        self.state = state

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        super().close()
        self.server.stop()


@contextmanager
def running_simulator(settings: SimSettings | None = None, port: int = 0) -> Iterator[RunningSimulator]:
    """Start the simulator on 127.0.0.1 (`port` 0 picks a free one) and stop it on exit."""
    port = port or free_port(HOST)
    app = create_app(settings, base_url=f"http://{HOST}:{port}")
    server = ServerThread(app, HOST, port, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    server.start()
    sim = RunningSimulator(server, app.state.sim)
    try:
        yield sim
    finally:
        sim.close()
