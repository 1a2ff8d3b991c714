"""`altinn-receiver serve`: run the receiver with uvicorn, draining on SIGTERM before it stops listening."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING

import click
import uvicorn

from receiver.app import ReceiverApp, ServicesSpec, build_services, create_app, prepare, server_options
from receiver.cli.common import EXIT_INTERRUPTED, config_option, fail, fail_config, load
from receiver.config import Config, ConfigError
from receiver.observability import tracing
from receiver.observability.logs import BufferedLineHandler, add_secrets, setup_logging
from receiver.runtime import prepare_store
from receiver.store.backends import open_backend
from receiver.store.errors import StoreError
from receiver.web.connections import fit_to_file_limit

if TYPE_CHECKING:
    from receiver.console.server import ConsoleServer

log = logging.getLogger("receiver.serve")

SWITCH_INTERVAL_S = 0.0005
LAST_RESPONSES_S = 1
"""After the drain, how long uvicorn waits for responses still being written (every request still arriving was cut
off when the drain's time ran out) before it cancels what is left."""


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT first drain the receiver while it keeps listening.

    uvicorn alone stops listening at once and re-raises the signal after shutting down (exit status -15). Here the
    first signal only marks the runtime as draining (new pushes and /readyz answer 503 + Retry-After); the main loop
    then runs the drain (commits in flight, services stop, up to `shutdown_timeout`) and only after it lets uvicorn
    shut down, so the process exits 0 after SIGTERM and 130 after Ctrl-C (`interrupted`), as every command does. A
    second SIGINT forces the exit.

    The whole exit stays within `shutdown_timeout`: a request still arriving when it runs out is cut off (the
    connections' read deadline is brought forward to it), so uvicorn's own graceful wait that follows is only for
    responses being written (`LAST_RESPONSES_S`), not a second `shutdown_timeout` spent on slow clients.
    """

    def __init__(self, config: uvicorn.Config, app: ReceiverApp, console: ConsoleServer | None = None) -> None:
        super().__init__(config)
        self.app = app
        self.console = console
        """The console's server, run in this one's event loop; stopped at the first signal."""
        self.drain_requested = False
        self.interrupted = False
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_requested:
            self.should_exit = True
            self.force_exit = sig == signal.SIGINT
            return
        self.drain_requested = True
        self.interrupted = sig == signal.SIGINT
        if self.console is not None:
            self.console.should_exit = True
        runtime = self.app.state.runtime
        if runtime is not None:
            runtime.draining = True  # at once: the next push must already get 503

    async def on_tick(self, counter: int) -> bool:
        if self.drain_requested and self._drain is None:
            runtime = self.app.state.runtime
            if runtime is None:
                self.should_exit = True
            else:
                self.app.connections.drain(runtime.config.receiver.shutdown_timeout)
                self._drain = asyncio.create_task(runtime.drain())
        if self._drain is not None and self._drain.done():
            self.config.timeout_graceful_shutdown = LAST_RESPONSES_S
            self.should_exit = True
        return await super().on_tick(counter)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if self.console is None:
            await super().serve(sockets)
            return
        async with self.console.running():
            await super().serve(sockets)


@click.command("serve")
@config_option
def serve_command(config_path: str | None) -> None:
    """Receive Altinn Events pushes on POST [receiver] path and store them durably.

    Answers 200 only after the event is committed to the inbox ([store] path or url). Also serves GET /healthz,
    GET /readyz (200 when a push would be stored now) and GET /metrics (Prometheus). Logs are JSON lines on stdout.
    With a [console] section it also serves the operator console on a listener of its own ([console] host, port).

    On SIGTERM it keeps listening but answers new pushes and /readyz with 503, finishes what is in flight
    (up to [receiver] shutdown_timeout), then exits 0 (130 after Ctrl-C). It exits 2 with one line when the config,
    a handler's options or the Maskinporten key are unusable, 1 when the store or the port cannot be had (a store that
    SQLite's quick_check finds damaged, or an empty file, is refused: [store] check_on_start).
    """
    config = load(config_path)
    try:
        prepared = prepare(config)  # a bad handler, option or key stops here, with exit status 2
    except ConfigError as error:
        fail_config(error)
    add_secrets(prepared.pipelines.secrets())
    run(config, lambda runtime: build_services(runtime, prepared.pipelines))


def run(config: Config, services: ServicesSpec | None = None) -> None:
    """Serve the receiver until SIGTERM (exit 0) or Ctrl-C (exit 130) has drained it; exit 1 with one line on stderr
    when it cannot start: the store cannot be made or opened, the address cannot be listened on.

    `services` replaces the configured background services (`bench/ingest.py` measures the webhook alone).
    """
    # Log lines are written in the background, at most 0.1 s late: one write per line cost as much as the push.
    setup_logging(config.log.level, BufferedLineHandler(sys.stdout))
    # A file-size limit (RLIMIT_FSIZE) must surface as a failed commit (503), not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # The inbox writer thread needs the GIL back after each batch's SQLite call; with the default 5 ms switch interval
    # that hand-over can stall a commit (and every push waiting on it) for up to 5 ms while the event loop runs.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Both checked before uvicorn starts: from inside it each failure is a traceback in the log, and the services
    # would already have started when the port turned out to be taken.
    try:
        prepare_store(open_backend(config.store), config.store)
    except StoreError as error:
        fail(error)
    held, warning = fit_to_file_limit(config.receiver.max_connections)
    if warning:
        log.warning(warning)
        config = replace(config, receiver=replace(config.receiver, max_connections=held))
    sock = listen(config.receiver.host, config.receiver.port)
    tracing.start_from_environment()  # OTEL_* variables; nothing happens without them
    app = create_app(config, services=services)
    server = DrainingServer(uvicorn.Config(app, **server_options(config)), app, open_console(config, app))
    try:
        with contextlib.suppress(SystemExit):  # uvicorn exits this way when startup fails; reported below
            server.run(sockets=[sock])
    finally:
        tracing.stop()  # the spans still buffered are exported
    if not server.started:
        where = f"{config.receiver.host}:{config.receiver.port}"
        fail(app.state.startup_error or f"the receiver did not start on {where}; the log line above says why")
    if server.interrupted:
        sys.exit(EXIT_INTERRUPTED)


def open_console(config: Config, app: ReceiverApp) -> ConsoleServer | None:
    """The console's server on a socket of its own (`[console]`; None without it), bound now so that a taken port
    stops `serve` before anything starts. It shows the receiver whose runtime `app` opens; /readyz says where."""
    if config.console is None:
        return None
    from receiver.console.server import ConsoleServer  # Jinja2 and the templates only when the console is on

    sock = listen(config.console.host, config.console.port, section="console")
    console = ConsoleServer(lambda: app.state.runtime, config, sock)
    app.state.console_url = console.url
    log.info("console listening", extra={"url": console.url, "read_only": config.console.read_only})
    return console


def listen(host: str, port: int, section: str = "receiver") -> socket.socket:
    """The socket uvicorn serves on, bound as uvicorn would bind it; exit 1 with one line when it cannot be (the
    hint names the keys of `section`)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hints = {
            errno.EADDRINUSE: f"another process listens there: stop it, or change [{section}] port",
            errno.EACCES: f"ports below 1024 need privileges: choose a higher [{section}] port",
            errno.EADDRNOTAVAIL: f"this machine has no such address: check [{section}] host",
        }
        reason = (exc.strerror or str(exc)).lower()
        hint = hints.get(exc.errno or 0, f"check [{section}] host and port")
        fail(f"cannot listen on {host}:{port}: {reason} ({hint})")
    sock.set_inheritable(True)
    return sock
