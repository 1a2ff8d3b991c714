"""The console's browser tests' world: an `altinn-receiver serve` with a `[console]` section, as a recipient
subscribed to the project's Altinn simulator (attachments downloaded to a folder of its own), and Debian's Chromium
driven by Playwright through its path (never a browser Playwright downloads). And the console over a runtime of its
own in this process, for the page tests on either backend."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import Config
from receiver.console.app import create_console_app
from receiver.onboarding.demo import ReceiverSetup
from receiver.runtime import Runtime
from receiver.server_thread import ServerThread, free_port
from tests.console_support import TOKEN
from tests.dispatch_support import RECIPIENT_ORG, RESOURCE, recipient_setup
from tests.ingest_support import ServeProcess
from tests.support import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
"""Debian's package `chromium` (`.ci/run` installs it when it is missing)."""


@dataclass
class ConsoleReceiver:
    """A running receiver with its console: `url` the console's, `webhook_url` the webhook's listener."""

    sim: RunningSimulator
    setup: ReceiverSetup
    serve: ServeProcess
    url: str
    token: str
    attachments: Path

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.setup.port}"

    @property
    def store(self) -> Path:
        return self.setup.store

    def send(self, title: str, attachments: int = 0) -> str:
        """A correspondence sent to this receiver's organisation; Altinn (the simulator) pushes its event."""
        return self.sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title=title, attachments=attachments)

    def client(self) -> httpx.Client:
        """An HTTP client on the console with the bearer token."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    def readyz(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(self.webhook_url + "/readyz", timeout=5).json()
        return body


def console_section(port: int, **options: object) -> str:
    """A `[console]` section on `port` with the tests' token and `options`."""
    lines = ["[console]", f"port = {port}", f"token = {json.dumps(TOKEN)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def console_receiver(folder: Path, *, extra: str = "", **console: object) -> Iterator[ConsoleReceiver]:
    """`serve` as a recipient against a fresh simulator, with the console on a free loopback port, once Altinn has
    validated its subscription. `extra`: more config (pipelines, handler options); `console`: more `[console]`
    keys."""
    attachments = folder / "attachments"
    port = free_port()
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(
            sim,
            folder,
            extra=f"[handlers.download_attachments]\ndir = {json.dumps(str(attachments))}\n"
            + extra
            + console_section(port, **console),
        )
        config = folder / "receiver.toml"
        setup.write(config)
        with ServeProcess(folder, config=config, port=setup.port, store=setup.store) as serve:
            receiver = ConsoleReceiver(sim, setup, serve, f"http://127.0.0.1:{port}", TOKEN, attachments)
            wait_until(lambda: _validated(receiver), timeout=20, message="Altinn to validate the subscription")
            yield receiver


def _validated(receiver: ConsoleReceiver) -> bool:
    services = receiver.readyz().get("services", {})
    assert isinstance(services, dict)
    return bool(services.get("subscriptions", {}).get("state") == "validated")


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; the test fails (never skips) without it."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium (apt-get install chromium;"
            " .ci/run installs it)",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=CHROMIUM)


def sign_in(page: Page, url: str, token: str = TOKEN) -> None:
    """Sign in on `/login` with the token, as an operator does."""
    page.goto(url + "/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


class ConsoleWithRuntime:
    """The console app over a receiver runtime of its own (the store opened as `serve` opens it, no background
    services), for page tests on any backend: ASGI, served by `ServerThread` on loopback."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.runtime: Runtime | None = None
        self.app = create_console_app(lambda: self.runtime, config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        self.runtime = await Runtime.open(self.config)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.runtime.close()
        await send({"type": "lifespan.shutdown.complete"})


@contextmanager
def console_server(config: Config) -> Iterator[httpx.Client]:
    """The console for `config` on a free loopback port; an HTTP client on it with the bearer token."""
    with (
        ServerThread(ConsoleWithRuntime(config)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client,
    ):
        yield client
