"""What the onboarding tests share: an agency set up with `init` against the simulator, and `serve` running it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from altinn_sim.runner import RunningSimulator
from receiver.server_thread import free_port
from tests.support import REPO, wait_until

SENDER_ORG = "310000000"
RECIPIENT_ORG = "310000001"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "receiver", *args]


def env_of(directory: Path) -> dict[str, str]:
    """receiver.env as a mapping (what `set -a; . receiver.env` exports)."""
    lines = (directory / "receiver.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@dataclass
class Agency:
    directory: Path
    port: int

    @property
    def config(self) -> Path:
        return self.directory / "receiver.toml"

    @property
    def env(self) -> dict[str, str]:
        return env_of(self.directory)

    @property
    def jwk(self) -> dict[str, str]:
        jwk: dict[str, str] = json.loads((self.directory / "maskinporten.jwk.json").read_text())
        return jwk

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An altinn-receiver command with this agency's config and receiver.env in the environment."""
        return subprocess.run(
            cli(*args, "--config", str(self.config)),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )


def onboard(
    sim: RunningSimulator,
    directory: Path,
    client_id: str,
    resource: str,
    scopes: tuple[str, ...] | None,
    *args: str,
    public_path: str = "/events",
) -> Agency:
    """`init` against the simulator, the webhook on a free port; the client registered there with the generated
    JWK holding `scopes` (None: not registered)."""
    port = free_port()
    subprocess.run(
        cli("init", "--dir", str(directory), "--yes", "--resource", resource, "--org", SENDER_ORG,
            "--owner-code", "ttd", "--platform-url", sim.url, "--issuer", sim.issuer, "--client-id", client_id,
            "--public-url", f"http://127.0.0.1:{port}{public_path}", *args),
        cwd=REPO, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    config = directory / "receiver.toml"
    config.write_text(config.read_text().replace("port = 8080", f"port = {port}"))
    agency = Agency(directory, port)
    if scopes is not None:
        sim.register_client(client_id, public_jwk=agency.jwk, scopes=list(scopes), org=SENDER_ORG)
    return agency


def subscription_of(sim: RunningSimulator, resource: str) -> dict[str, object] | None:
    subscriptions = sim.state_snapshot()["subscriptions"]
    return next((s for s in subscriptions if str(s.get("resourceFilter", "")).endswith(resource)), None)


@contextmanager
def serving(agency: Agency, sim: RunningSimulator, resource: str, *, validated: bool = True) -> Iterator[Agency]:
    """`serve` with the agency's config, ready, and its subscription registered (and validated, if asked)."""
    process = subprocess.Popen(
        cli("serve", "--config", str(agency.config)),
        env={**os.environ, **agency.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )

    def ready() -> bool:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            return httpx.get(f"http://127.0.0.1:{agency.port}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def subscribed() -> bool:
        found = subscription_of(sim, resource)
        return found is not None and (bool(found.get("validated")) or not validated)

    try:
        wait_until(ready, timeout=30, interval=0.1, message="serve's /readyz")
        wait_until(subscribed, timeout=30, interval=0.1, message=f"the subscription to {resource}")
        yield agency
    finally:
        process.terminate()
        process.wait(timeout=30)
