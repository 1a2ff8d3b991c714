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

from receiver.app import Prepared, ReceiverApp, ServicesSpec, build_services, create_app, prepare, server_options
from receiver.cli.common import EXIT_INTERRUPTED, config_option, fail, fail_config, load
from receiver.cli.supervisor import run_children
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
    second SIGINT forces the exit; a second SIGTERM changes nothing (serve's children can get one SIGTERM from their
    parent and one from a supervisor that signals every process of the service, as systemd does).

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
            if sig == signal.SIGINT:
                self.should_exit = self.force_exit = True
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


ROLES = ("all", "webhook", "worker")


@click.command("serve")
@config_option
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    help="webhook: take pushes (/events) and run no background services. worker: run the dispatcher, subscriptions,"
    " catch-up and retention, with /healthz, /readyz and /metrics but no /events (404). all: both, as two processes"
    " under this one (docs/operations.md#roles).",
)
@click.option("--port", type=click.IntRange(0, 65535), help="Listen on this port instead of [receiver] port.")
@click.option(
    "--single-process",
    is_flag=True,
    help="With --role all: run the webhook and the worker in this one process, as before there were roles.",
)
def serve_command(config_path: str | None, role: str, port: int | None, single_process: bool) -> None:
    """Receive Altinn Events pushes on POST [receiver] path and store them durably.

    Answers 200 only after the event is committed to the inbox ([store] path or url). Also serves GET /healthz,
    GET /readyz (200 when a push would be stored now) and GET /metrics (Prometheus). Logs are JSON lines on stdout.
    With a [console] section it also serves the operator console on a listener of its own ([console] host, port).

    By default the webhook and the worker (handlers, subscriptions, catch-up, retention) run as two processes under
    this one, which passes signals on, relays their log lines and exits as one service; /readyz and /metrics on the
    port include the worker's. A child that dies takes the service down (exit 1); the children never outlive it.

    On SIGTERM it keeps listening but answers new pushes and /readyz with 503, finishes what is in flight
    (up to [receiver] shutdown_timeout), then exits 0 (130 after Ctrl-C). It exits 2 with one line when the config,
    a handler's options or the Maskinporten key are unusable, 1 when the store or the port cannot be had (a store that
    SQLite's quick_check finds damaged, or an empty file, is refused: [store] check_on_start).
    """
    config = load(config_path)
    if port is not None:
        config = replace(config, receiver=replace(config.receiver, port=port))
    try:
        prepared = prepare(config)  # a bad handler, option or key stops here, with exit status 2
    except ConfigError as error:
        fail_config(error)
    add_secrets(prepared.pipelines.secrets())
    if role == "webhook":
        run(config, services=[])
    elif role == "worker":
        run(config, worker_services(prepared), events=False, console=True)
    elif single_process:
        run(config, worker_services(prepared), console=True)
    else:
        run_as_two_processes(config, worker_services(prepared))


def worker_services(prepared: Prepared) -> ServicesSpec:
    """What a process with the worker role runs besides /healthz, /readyz and /metrics: `serve --role worker`, the
    worker process of `serve` (`worker` in `run_as_two_processes`), and `serve --single-process`; all three start it
    through `serve_on`. Whatever else runs "with the worker role" (the operator console's listener) starts with it
    there, in those processes only."""
    return lambda runtime: build_services(runtime, prepared.pipelines)


def run(config: Config, services: ServicesSpec | None = None, *, events: bool = True, console: bool = False) -> None:
    """Serve the receiver in this process until SIGTERM (exit 0) or Ctrl-C (exit 130) has drained it; exit 1 with one
    line on stderr when it cannot start: the store cannot be made or opened, the address cannot be listened on.

    `services` replaces the configured background services (`bench/ingest.py` measures the webhook alone); `events`
    says whether it takes pushes (the worker role does not); `console`, whether it serves the console (`[console]`,
    with the worker role).
    """
    set_up_process(config)
    config = checked(config)
    sock = listen(config.receiver.host, config.receiver.port)
    serve_on(sock, config, services, events=events, console=bind_console(config) if console else None)


def run_as_two_processes(config: Config, services: ServicesSpec) -> None:
    """`serve --role all`: the webhook and the worker (`services`) as two child processes of this one, which passes
    signals on, relays their log lines and exits as one service would (receiver/cli/supervisor.py).

    The webhook child serves the service's port; the worker child serves /healthz, /readyz and /metrics on a loopback
    port of its own, which the webhook child's /readyz and /metrics include. The checks and the sockets are this
    process's, before it forks: a store or port that cannot be had is one line and exit 1, as with one process."""
    # The parent's own few lines are written at once: a background writer would be a thread in the fork.
    setup_logging(config.log.level, logging.StreamHandler(sys.stdout))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    config = checked(config)
    service = listen(config.receiver.host, config.receiver.port)
    inner = listen("127.0.0.1", 0)
    worker_url = f"http://127.0.0.1:{inner.getsockname()[1]}"
    console = bind_console(config)  # served by the worker, whose /readyz (and so the service's) says where
    # Listening before the children start: a connection that comes before its child serves waits in the backlog
    # instead of being refused. Altinn validates a subscription by pushing to the webhook as soon as the worker has
    # registered it, which may be before the webhook child is up. (uvicorn sets its own backlog when it starts.)
    for sock in (service, inner, console):
        if sock is not None:
            sock.listen()

    def webhook() -> None:
        set_up_process(config)
        if console is not None:
            console.close()
        serve_on(service, config, services=[], worker_url=worker_url)

    def worker() -> None:
        set_up_process(config)
        serve_on(inner, config, services, events=False, console=console, access_lines=False)

    children = {"webhook": webhook, "worker": worker}
    sockets = (service, inner) if console is None else (service, inner, console)
    sys.exit(run_children(children, inherited=sockets, about={"worker_url": worker_url}))


def set_up_process(config: Config) -> None:
    """What every serving process sets up first: its log lines, its signals and its switch interval."""
    # Log lines are written in the background, at most 0.1 s late: one write per line cost as much as the push.
    setup_logging(config.log.level, BufferedLineHandler(sys.stdout))
    # A file-size limit (RLIMIT_FSIZE) must surface as a failed commit (503), not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # The inbox writer thread needs the GIL back after each batch's SQLite call; with the default 5 ms switch interval
    # that hand-over can stall a commit (and every push waiting on it) for up to 5 ms while the event loop runs.
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def checked(config: Config) -> Config:
    """The store checked and migrated, and `max_connections` fitted to the file limit; exit 1 with one line when the
    store cannot be had. Both before uvicorn starts: from inside it each failure is a traceback in the log, and the
    services would already have started when the port turned out to be taken."""
    try:
        prepare_store(open_backend(config.store), config.store)
    except StoreError as error:
        fail(error)
    held, warning = fit_to_file_limit(config.receiver.max_connections)
    if warning:
        log.warning(warning)
        config = replace(config, receiver=replace(config.receiver, max_connections=held))
    return config


def serve_on(
    sock: socket.socket,
    config: Config,
    services: ServicesSpec | None,
    *,
    events: bool = True,
    worker_url: str | None = None,
    console: socket.socket | None = None,
    access_lines: bool = True,
) -> None:
    """uvicorn on `sock` until it has drained (create_app says what the other arguments mean), and the console on
    `console` (`bind_console`) when it is given: the process with the worker role serves it, its requests always in
    the access log."""
    tracing.start_from_environment()  # OTEL_* variables; nothing happens without them
    app = create_app(config, services=services, events=events, worker_url=worker_url, access_lines=access_lines)
    server = DrainingServer(uvicorn.Config(app, **server_options(config)), app, console_server(config, app, console))
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


def bind_console(config: Config) -> socket.socket | None:
    """The console's socket (`[console]` host and port; None without the section), bound before anything starts or
    forks, so that a taken port stops `serve` with one line; where it listens is logged (port 0 picks one)."""
    if config.console is None:
        return None
    sock = listen(config.console.host, config.console.port, section="console")
    log.info("console listening", extra={"url": url_of(sock), "read_only": config.console.read_only})
    return sock


def console_server(config: Config, app: ReceiverApp, sock: socket.socket | None) -> ConsoleServer | None:
    """The console's server on `sock` (None without one), showing the receiver whose runtime `app` opens; that app's
    /readyz says where the console listens."""
    if sock is None:
        return None
    from receiver.console.server import ConsoleServer  # Jinja2 and the templates only when the console is on

    app.state.console_url = url_of(sock)
    return ConsoleServer(lambda: app.state.runtime, config, sock)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
