"""Real receivers for the ingest tests: in-process (uvicorn in a thread) or as an `altinn-receiver serve` subprocess,
each on a loopback port with its own SQLite file, plus events in the shapes Altinn sends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from receiver.app import ServicesSpec, create_app, server_options
from receiver.config import Config, StoreConfig, load_config
from receiver.server_thread import ServerThread, free_port
from tests.store_backends import store_toml
from tests.support import DATA, complete_lines, wait_until, write_config

SECRET = "correct-horse-battery-staple-0123456789"
OLD_SECRET = "previous-secret-still-accepted-98765"
CLI = [sys.executable, "-m", "receiver"]
PUBLISHED = "no.altinn.correspondence.correspondencepublished"


def sample(name: str) -> bytes:
    """The bytes of a payload in `tests/data`."""
    return (DATA / name).read_bytes()


def new_event(**attributes: Any) -> dict[str, Any]:
    """A correspondence event as Altinn pushes it, with a fresh id; `None` drops an attribute."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "type": PUBLISHED,
        "subject": "urn:altinn:organization:identifier-no:314249879",
        "time": "2025-03-14T09:26:53.5897932Z",
        "resource": "urn:altinn:resource:nabovarsel",
        "resourceinstance": str(uuid.uuid4()),
    }
    event.update(attributes)
    return {key: value for key, value in event.items() if value is not None}


def compact(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def config_text(store: Path | StoreConfig, port: int = 0, **receiver: Any) -> str:
    """A config file's text: `receiver` keys are written as TOML values (lists, strings, numbers); None leaves a key
    out (`secret=None` with a `secret_file`). `store` is a file, or any backend's store."""
    settings: dict[str, Any] = {"secret": SECRET, "previous_secrets": [OLD_SECRET], **receiver}
    if port:
        settings["port"] = port
    lines = ["[receiver]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items() if value is not None]
    store_config = store if isinstance(store, StoreConfig) else StoreConfig(path=store)
    return "\n".join(lines) + "\n\n" + store_toml(store_config)


def make_config(tmp_path: Path, *, store: StoreConfig | None = None, **receiver: Any) -> Config:
    """A config in `tmp_path` whose store is `store` (default: a file beside it)."""
    text = config_text(store or tmp_path / "receiver.db", **receiver)
    return load_config(write_config(tmp_path / "receiver.toml", text))


@contextmanager
def running_app(config: Config, services: ServicesSpec = ()) -> Iterator[ServerThread]:
    """The receiver app in this process, served by uvicorn on a free loopback port with the serve command's options.

    Without the configured background services unless `services` names some: these tests are about the front door.
    """
    options = {
        key: value
        for key, value in server_options(config).items()
        if key not in ("host", "port", "access_log", "lifespan")
    }
    with ServerThread(create_app(config, services=services), **options) as server:
        yield server


def webhook(server_url: str, code: str | None = SECRET, path: str = "/events") -> str:
    return f"{server_url}{path}" + (f"?code={code}" if code is not None else "")


def push(client: httpx.Client, url: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    content = compact(body) if isinstance(body, dict) else body
    headers.setdefault("content-type", "application/json; charset=utf-8")
    return client.post(url, content=content, headers=headers)


def inbox_rows(store: Path, where: str = "1", *params: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(store) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(f"SELECT * FROM inbox WHERE {where} ORDER BY seq", params).fetchall()


def count(store: Path, table: str = "inbox") -> int:
    with sqlite3.connect(store) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


class ServeProcess:
    """`altinn-receiver serve --config PATH` as a subprocess; stdout (JSON log lines) goes to a file. `wrapper` is a
    command that runs it (its arguments follow), `args` more arguments of serve (`--role worker`), `store` the store's
    path (default: receiver.db in `tmp_path`). Its environment is this one without `OTEL_*` (traces stay off unless a
    test asks), plus `env`. `config` is a config file written already, with the webhook on `port`, instead of one
    written here."""

    def __init__(
        self,
        tmp_path: Path,
        preexec_fn: Callable[[], None] | None = None,
        *,
        wrapper: Sequence[str] = (),
        args: Sequence[str] = (),
        store: Path | None = None,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        port: int = 0,
        **receiver: Any,
    ) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, **(env or {})}
        self.port = port or free_port()
        self.store = store or tmp_path / "receiver.db"
        self.wrapper = list(wrapper)
        self.args = list(args)
        self.config = config or write_config(tmp_path / "receiver.toml", config_text(self.store, self.port, **receiver))
        self.log_path = tmp_path / "serve.log"
        self.err_path = tmp_path / "serve.err"
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        with self.log_path.open("ab") as out, self.err_path.open("ab") as err:
            self.process = subprocess.Popen(
                [*self.wrapper, *CLI, "serve", "--config", str(self.config), *self.args],
                stdout=out,
                stderr=err,
                preexec_fn=self.preexec_fn,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
            )
        wait_until(self._healthy, timeout=20, message=f"receiver on port {self.port} to answer /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}: {self.err_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in complete_lines(self.log_path) if line.strip()]

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`altinn-receiver ARGS` as a process, with this environment and `env` added to it."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
