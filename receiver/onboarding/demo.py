"""The whole loop on this machine: the simulator, a receiver subscribed to it, correspondences sent, a short outage
recovered through catch-up, and a summary of what arrived and how.

The pieces (a generated Maskinporten key registered at the simulator, the receiver's config, a receiver on a free
loopback port) are also what the integration tests build on.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from altinn_sim import SimSettings, SimulatorAdmin, running_simulator
from receiver.app import build_services, create_app, server_options
from receiver.config import Config, SubscriptionConfig, load_config
from receiver.runtime import Runtime, Service
from receiver.server_thread import ServerThread, free_port

HOST = "127.0.0.1"
SERVICE_OWNER_ORG = "991825827"
SERVICE_OWNER = "digdir"
SCOPES = (
    "altinn:serviceowner",
    "altinn:events.subscribe",
    "altinn:correspondence.read",
    "altinn:correspondence.write",
)


@dataclass(frozen=True)
class Identity:
    """A Maskinporten client registered at the simulator, with its private key in a file only its owner reads."""

    client_id: str
    kid: str
    key_file: Path
    org: str
    scopes: tuple[str, ...]


def register_identity(
    sim: SimulatorAdmin,
    directory: Path,
    *,
    org: str = SERVICE_OWNER_ORG,
    service_owner: str | None = SERVICE_OWNER,
    scopes: Sequence[str] = SCOPES,
) -> Identity:
    """Generate an RSA key, write it to `directory`, and register its public half at the simulator."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    identity = Identity(f"demo-{uuid.uuid4().hex[:8]}", str(uuid.uuid4()), directory / "maskinporten-key.pem", org,
                        tuple(scopes))  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    identity.key_file.write_bytes(pem)
    identity.key_file.chmod(0o600)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    sim.register_client(
        identity.client_id, public_jwk=jwk, kid=identity.kid, scopes=list(scopes), org=org, service_owner=service_owner
    )
    return identity


def _toml(value: Any) -> str:
    """A TOML literal for a string, number, boolean or list of them (JSON spells these the same way)."""
    return json.dumps(value)


@dataclass
class ReceiverSetup:
    """What a receiver's config says, written as TOML; `port` is chosen once, so `public_url` stays the same."""

    sim_url: str
    identity: Identity
    store: Path
    subscriptions: Sequence[SubscriptionConfig]
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    previous_secrets: Sequence[str] = ()
    port: int = field(default_factory=lambda: free_port(HOST))
    public_path: str = "/events"
    """Where `public_url` points; the receiver listens on /events (another path makes Altinn's validation fail)."""
    catchup: dict[str, Any] = field(default_factory=lambda: {"interval": "5m", "start": "now", "enabled": True})
    dispatch: dict[str, Any] = field(default_factory=dict)
    role: str = "service-owner"
    extra: str = ""
    store_url: str = ""
    """A PostgreSQL store's URL, written instead of `store` (the SQLite file) when given."""

    @property
    def public_url(self) -> str:
        return f"http://{HOST}:{self.port}{self.public_path}"

    def toml(self) -> str:
        lines = [
            "[receiver]",
            f"host = {_toml(HOST)}",
            f"port = {self.port}",
            f"secret = {_toml(self.secret)}",
            f"previous_secrets = {_toml(list(self.previous_secrets))}",
            f"public_url = {_toml(self.public_url)}",
            "shutdown_timeout = 5",
            "[store]",
            f"url = {_toml(self.store_url)}" if self.store_url else f"path = {_toml(str(self.store))}",
            "[altinn]",
            f"platform_url = {_toml(self.sim_url)}",
            f"role = {_toml(self.role)}",
            "[maskinporten]",
            f"issuer = {_toml(self.sim_url + '/')}",
            f"client_id = {_toml(self.identity.client_id)}",
            f"kid = {_toml(self.identity.kid)}",
            f"private_key_file = {_toml(str(self.identity.key_file))}",
            f"scopes = {_toml(list(self.identity.scopes))}",
            "[catchup]",
            *(f"{k} = {_toml(v)}" for k, v in self.catchup.items()),
        ]
        if self.dispatch:
            lines += ["[dispatch]", *(f"{k} = {_toml(v)}" for k, v in self.dispatch.items())]
        for sub in self.subscriptions:
            lines += ["[[subscriptions]]", f"resource = {_toml(sub.resource)}"]
            lines += [f"{k} = {_toml(v)}" for k, v in (("subject", sub.subject), ("type", sub.type)) if v]
        return "\n".join(lines) + "\n" + self.extra

    def write(self, path: Path) -> Config:
        """Write the config file (readable by its owner only: it holds the secret) and load it back."""
        path.write_text(self.toml(), encoding="utf-8")
        path.chmod(0o600)
        return load_config(path, environ=os.environ)


class ReceiverServer:
    """The receiver app in a uvicorn thread on its configured loopback port; a context manager.

    `services` replaces `build_services` (a function of the runtime), so tests can tune the real services.
    """

    def __init__(self, config: Config, services: Callable[[Runtime], Sequence[Service]] | None = None) -> None:
        self.config = config
        self._build = services or build_services
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app = create_app(config, services=self._services)
        options = server_options(config)
        # ServerThread sets the lifespan and access log itself and takes host and port as arguments.
        host, port = options.pop("host"), options.pop("port")
        for fixed in ("lifespan", "access_log"):
            options.pop(fixed)
        self.server = ServerThread(self.app, host, port, **options)

    def _services(self, runtime: Runtime) -> Sequence[Service]:
        """Called by the lifespan on the server's loop, which `wait_started` then uses."""
        self._loop = asyncio.get_running_loop()
        return self._build(runtime)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def start(self) -> ReceiverServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def wait_started(self, timeout: float = 30.0) -> None:
        """Until every service's `start` has returned (subscriptions POSTed, first catch-up run done)."""
        assert self._loop is not None, "the receiver is not running"
        asyncio.run_coroutine_threadsafe(self.runtime.wait_started(), self._loop).result(timeout)

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ServeCommand:
    """`altinn-receiver serve --config CONFIG` as a process of its own, as an operator runs it (its two processes),
    its log lines appended to `log`; a context manager that stops it with SIGTERM (it drains)."""

    def __init__(self, config: Config, log: Path) -> None:
        self.config = config
        self.log = log
        self.url = f"http://{config.receiver.host}:{config.receiver.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def readiness(self) -> dict[str, Any]:
        """`/readyz`'s body ({} while it does not answer); a DemoError when the process has ended."""
        assert self._process is not None, "the receiver is not running"
        if self._process.poll() is not None:
            raise DemoError(f"the receiver exited with status {self._process.returncode}")
        try:
            body: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body

    def service(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.readiness().get("services", {}).get(name, {})
        return status

    def __enter__(self) -> ServeCommand:
        with self.log.open("ab") as out:
            command = [sys.executable, "-m", "receiver", "serve", "--config", str(self.config.source)]
            self._process = subprocess.Popen(command, stdout=out, stderr=out)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(self.config.receiver.shutdown_timeout + 10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# --- the demo ---

TIME_SCALE = 50000.0
"""Altinn's waits divided by this: its 47-hour push retry schedule takes under 4 s, its 30 s pull lag under 1 ms."""
SENDER_ORG = "991825827"
RECIPIENT_ORG = "312345678"
RESOURCE = "urn:altinn:resource:demo-correspondence"
RECIPIENT_SCOPES = ("altinn:events.subscribe", "altinn:correspondence.read")
MARKER = ".altinn-receiver-demo"
ATTACHMENTS_PER_CORRESPONDENCE = 2


class DemoError(Exception):
    """The demo cannot run or did not finish; the message says what to do."""


@dataclass(frozen=True)
class Summary:
    """What arrived and how, read from the receiver's store at the end."""

    expected: int
    by_push: int
    by_catchup: int
    processed: int
    stored: int
    attachment_bytes: int
    dead: int

    @property
    def complete(self) -> bool:
        return self.processed == self.expected and self.dead == 0

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"what": "events sent to this recipient", "count": self.expected},
            {"what": "received by push", "count": self.by_push},
            {"what": "received by catch-up", "count": self.by_catchup},
            {"what": "processed", "count": self.processed},
            {"what": "correspondences stored", "count": self.stored},
            {"what": "attachment bytes", "count": self.attachment_bytes},
            {"what": "dead", "count": self.dead},
        ]


def prepare(directory: Path) -> None:
    """Empty `directory` for a fresh run, refusing any folder an earlier demo did not create."""
    if directory.exists():
        if any(directory.iterdir()) and not (directory / MARKER).exists():
            raise DemoError(f"{directory} is not empty and not a demo folder ({MARKER} is missing): pick another --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("created by `altinn-receiver demo`; emptied by the next run\n", encoding="utf-8")


def summarise(store: Path, attachments: Path, expected: int) -> Summary:
    with closing(sqlite3.connect(store)) as conn:
        channels = dict(conn.execute("SELECT channel, COUNT(*) FROM inbox GROUP BY channel").fetchall())
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status").fetchall())
        stored = conn.execute("SELECT COUNT(*) FROM correspondences").fetchone()[0]
    size = sum(f.stat().st_size for f in attachments.rglob("*") if f.is_file()) if attachments.exists() else 0
    return Summary(
        expected=expected,
        by_push=channels.get("push", 0),
        by_catchup=channels.get("catchup", 0),
        processed=statuses.get("done", 0),
        stored=stored,
        attachment_bytes=size,
        dead=statuses.get("dead", 0),
    )


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def run_demo(
    events: int,
    directory: Path,
    say: Callable[[str], None],
    *,
    log: Callable[[Path], None] | None = None,
    timeout: float = 40.0,
) -> Summary:
    """The whole loop; `say` gets one line per step, `log` the path for log lines once the folder is ready.
    Raises DemoError when a step does not complete within `timeout` seconds."""
    prepare(directory)
    if log is not None:
        log(directory / "receiver.log")
    attachments = directory / "attachments"
    recipient = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"
    with running_simulator(SimSettings(time_scale=TIME_SCALE, seed_correspondences=0)) as sim:
        say(f"simulator on {sim.url} (Altinn's delays divided by {TIME_SCALE:g})")
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        identity = register_identity(sim, directory, org=RECIPIENT_ORG, service_owner=None, scopes=RECIPIENT_SCOPES)
        setup = ReceiverSetup(
            sim.url,
            identity,
            directory / "receiver.db",
            [SubscriptionConfig(RESOURCE, subject=recipient)],
            catchup={"interval": "2s", "start": "now"},
            role="recipient",
            extra=f"[handlers.download_attachments]\ndir = {_toml(str(attachments))}\n",
        )
        config = setup.write(directory / "receiver.toml")
        say(f"generated a Maskinporten key ({identity.key_file.name}), config in {directory / 'receiver.toml'}")

        def inbox_count() -> int:
            return summarise(setup.store, attachments, events).by_push

        def send(count: int) -> None:
            for _ in range(count):
                sim.send_correspondence(RESOURCE, RECIPIENT_ORG, attachments=ATTACHMENTS_PER_CORRESPONDENCE)

        first = events - events // 2
        with ServeCommand(config, directory / "receiver.log") as receiver:
            _wait(lambda: receiver.service("subscriptions").get("state") == "validated", timeout,
                  "Altinn to validate the subscription")  # fmt: skip
            say(f"receiver on {receiver.url}: subscribed to {RESOURCE} and validated")
            send(first)
            _wait(lambda: inbox_count() >= first, timeout, "the pushes")
            say(f"sent {first} correspondences: {first} events pushed and stored")
        say("receiver stopped")
        before = len(sim.state_snapshot()["dead_letters"])
        send(events - first)
        say(f"sent {events - first} more while it is down; Altinn retries its pushes ({TIME_SCALE:g}x faster)...")
        _wait(
            lambda: len(sim.state_snapshot()["dead_letters"]) - before >= events - first,
            timeout,
            "Altinn to give up pushing",
        )
        say("Altinn gave up pushing them (dead letters at Altinn); starting the receiver again")
        with ServeCommand(config, directory / "receiver.log") as receiver:
            _wait(lambda: receiver.service("catchup").get("runs", 0) >= 1, timeout, "the first catch-up run")
            summary = summarise(setup.store, attachments, events)
            say(f"catch-up read {summary.by_catchup} missed events from the pull API; processing...")
            shown = -1

            def finished() -> bool:
                nonlocal shown
                now_processed = summarise(setup.store, attachments, events)
                if now_processed.processed != shown:
                    shown = now_processed.processed
                    say(f"processed {shown}/{events}")
                return now_processed.processed + now_processed.dead >= events

            _wait(finished, timeout, "the dispatcher to process every event")
    return summarise(setup.store, attachments, events)
