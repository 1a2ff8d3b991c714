"""Several receivers on one store, as a deployment runs them: `altinn-receiver serve` processes on ports of their own
(killed, stopped and started again by the tests), a round-robin balancer in front of them as a Kubernetes Service
would be, and what their logs say about the sync lease."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.server_thread import ServerThread, free_port
from receiver.timeutil import now, parse_iso
from tests.ingest_support import CLI
from tests.support import complete_lines, wait_until, write_config


class Replica:
    """`altinn-receiver serve` as a process of its own: the config's text with its own `[receiver] port`, its log
    (JSON lines, across restarts) in `tmp_path`."""

    def __init__(self, tmp_path: Path, name: str, config: str, *, port: int = 0, args: Sequence[str] = ()) -> None:
        self.name = name
        self.port = port or free_port()
        self.config = write_config(tmp_path / f"{name}.toml", with_port(config, self.port))
        self.config.chmod(0o600)
        self.log = tmp_path / f"{name}.log"
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_at: list[datetime] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--config", str(self.config), *self.args], stdout=out, stderr=out, env=env
            )
        wait_until(self.ready, timeout=30, interval=0.1, message=f"{self.name} to be ready")
        return self

    def readyz(self) -> dict[str, Any] | None:
        """`/readyz`'s body, None while it does not answer."""
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            body: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=5).json()
        except httpx.HTTPError:
            return None
        return body

    def ready(self) -> bool:
        body = self.readyz()
        return bool(body and body["ready"] and "waiting_to_start" not in json.dumps(body["services"]))

    def lease(self) -> dict[str, Any]:
        """The sync lease as this process sees it (`/readyz`)."""
        body = self.readyz()
        assert body is not None, f"{self.name} does not answer /readyz"
        status: dict[str, Any] = body["services"]["sync_lease"]
        return status

    def kill(self) -> None:
        """SIGKILL: no drain, no release; the moment is kept for `held`."""
        assert self.process is not None
        self.killed_at.append(now())
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, as a rolling deploy stops a pod; its exit status (at once when it has ended already)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in complete_lines(self.log) if line.startswith("{")]

    def held(self) -> list[tuple[datetime, datetime]]:
        """When this process held the sync lease, by its log: from taking it to giving it up, losing it, being killed,
        or now."""
        ends = [(at, "killed") for at in self.killed_at]
        marks = sorted(
            [(parse_iso(line["ts"]), line["msg"]) for line in self.lines() if "sync lease" in line["msg"]] + ends
        )
        spans, start = [], None
        for at, what in marks:
            if what.startswith("took"):
                start = at
            elif start is not None:
                spans.append((start, at))
                start = None
        if start is not None:
            spans.append((start, now()))
        return spans

    def logged(self, message: str) -> list[datetime]:
        """When this process logged `message`."""
        return [parse_iso(line["ts"]) for line in self.lines() if line["msg"] == message]


def with_port(config: str, port: int) -> str:
    """The config's text with `port` as its `[receiver] port`."""
    head, section, rest = config.partition("[receiver]\n")
    lines = [line for line in rest.split("\n") if not line.startswith("port = ")]
    return head + section + f"port = {port}\n" + "\n".join(lines)


@contextmanager
def replicas(tmp_path: Path, config: str, names: Sequence[str], **options: Any) -> Iterator[list[Replica]]:
    """Replicas of `config` started one after the other, each stopped (SIGTERM) at the end if it still runs."""
    with ExitStack() as stack:
        started = []
        for name in names:
            replica = Replica(tmp_path, name, config, **options)
            stack.callback(replica.stop)
            started.append(replica.start())
        yield started


class RoundRobin:
    """A balancer in front of replicas, as a Kubernetes Service is: each request goes to the next replica, and to the
    one after it when a replica refuses the connection (stopped, killed, not yet started). Anything else, a 503 from
    a draining replica included, goes back to the caller as the replica answered it."""

    def __init__(self, replicas: Sequence[Replica], port: int = 0) -> None:
        self.replicas = list(replicas)
        self._next = itertools.count()
        app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])
        self.server = ServerThread(app, port=port)

    @property
    def url(self) -> str:
        return self.server.url

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        first = next(self._next)
        for n in range(len(self.replicas)):
            replica = self.replicas[(first + n) % len(self.replicas)]
            url = f"{replica.url}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
            try:
                async with httpx.AsyncClient(timeout=30) as client:
                    answer = await client.request(request.method, url, content=body, headers=headers)
            except httpx.ConnectError:
                continue
            except httpx.TransportError as exc:  # it died while answering: whether it stored the event is unknown
                return Response(f"{replica.name} failed: {exc!r}", 502)
            return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))
        return Response("no replica takes connections", 502)

    def __enter__(self) -> RoundRobin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def overlapping(spans: dict[str, list[tuple[datetime, datetime]]]) -> list[tuple[str, str]]:
    """Pairs of holders whose spans overlap (an empty list when one held at a time)."""
    flat = sorted((start, end, name) for name, its in spans.items() for start, end in its)
    return [(a[2], b[2]) for a, b in itertools.pairwise(flat) if b[0] < a[1]]
