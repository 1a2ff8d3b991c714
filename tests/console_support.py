"""The console's tests: `altinn-receiver serve` with a `[console]` section (its port 0, found in /readyz), a client
signed in to it, and what the tests read from its pages (row ids, the CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from handlers import BaseHandler, Context, Event, Permanent
from receiver.config import StoreConfig
from tests.ingest_support import ServeProcess, config_text
from tests.pipeline_support import table
from tests.support import wait_until, write_config

TOKEN = "console-token-for-the-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class ConsoleServe(ServeProcess):
    """`serve` with the console on a port the OS picks, its token from the environment (`${CONSOLE_TOKEN}`),
    catch-up off; `console` adds `[console]` keys, `extra` more config (pipelines, dispatch), `args` to `serve`."""

    def __init__(
        self,
        tmp_path: Path,
        store: StoreConfig | None = None,
        *,
        console: dict[str, Any] | None = None,
        extra: str = "",
        args: Sequence[str] = (),
        **receiver: Any,
    ) -> None:
        super().__init__(tmp_path, env={"CONSOLE_TOKEN": TOKEN}, args=args)
        self.store_config = store or StoreConfig(path=self.store)
        settings = {"port": 0, "token": "${CONSOLE_TOKEN}", **(console or {})}
        text = config_text(self.store_config, self.port, **receiver)
        text += "\n" + "\n".join([*table("console", settings), *table("catchup", {"enabled": False})]) + extra
        write_config(self.config, text)
        self.console_url = ""

    def start(self) -> ConsoleServe:
        super().start()
        # Where the console listens, from the service's /readyz (once the process that serves it answers there).
        self.console_url = wait_until(
            lambda: httpx.get(f"{self.url}/readyz", timeout=10).json().get("console"), message="the console's url"
        )
        return self

    def __enter__(self) -> ConsoleServe:
        return self.start()

    def client(self, **options: Any) -> httpx.Client:
        """A client of the console, not signed in."""
        return httpx.Client(base_url=self.console_url, **{"timeout": 10, **options})

    @contextmanager
    def signed_in(self) -> Iterator[httpx.Client]:
        """A client of the console that signed in on /login and holds the session cookie."""
        with self.client() as client:
            answer = sign_in(client, TOKEN, next="/events")
            assert answer.status_code == 303, answer.text
            yield client


def sign_in(client: httpx.Client, token: str, **form: str) -> httpx.Response:
    """The answer to the sign-in form as a browser sends it: fetched, then posted with `token` and `form`'s fields."""
    return client.post(
        "/login", data={"csrf_token": csrf_token(client.get("/login").text, "/login"), "token": token, **form}
    )


def csrf_token(html: str, action: str = "") -> str:
    """The CSRF token in a page's forms (in its form that posts to `action`, when given)."""
    form = f'<form method="post" action="{re.escape(action)}"[^>]*>.*?' if action else ""
    match = re.search(form + r'name="csrf_token" value="([^"]+)"', html, re.S)
    assert match, "no CSRF token on the page"
    return match.group(1)


def row_ids(html: str) -> list[str]:
    """The ids of the event rows on a page, top to bottom."""
    return re.findall(r'<tr data-id="([^"]+)"', html)


def attempt_rows(html: str) -> list[list[str]]:
    """The cells of an event page's attempts table (their text), one list per attempt."""
    table = re.search(r'<table class="attempts">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, "no attempts table on the page"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows
    ]


class Refuse(BaseHandler):
    """A plugin (`tests.console_support:Refuse`) that refuses every event for good, naming its correspondence: dead
    letters of one cause whose errors differ by an id, as Altinn's 404 for a correspondence that is gone."""

    name = "refuse"

    @dataclass(frozen=True)
    class Options:
        reason: str = "is gone"

    async def handle(self, event: Event, ctx: Context[Refuse.Options]) -> None:
        raise Permanent(f"reading correspondence {event.resourceinstance}: {ctx.options.reason}")
