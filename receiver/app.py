"""The composition root: the Starlette app (the webhook, health and readiness, metrics, a JSON access log), the
lifespan that owns it all, and which background services a receiver runs.

The lifespan opens the store and the inbox writer, attaches them to the webhook, then starts the background services
without waiting for them (pushes are accepted meanwhile: Altinn validates a new subscription by pushing to us). On
shutdown it drains: new pushes get 503, commits in flight finish, services stop in reverse order, the store closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.altinn.keys import SigningKey, load_signing_key
from receiver.config import Config
from receiver.observability.logs import emit_json_line, redact_query, utc_stamp
from receiver.observability.merge import merge_expositions
from receiver.observability.metrics import CONTENT_TYPE
from receiver.runtime import Runtime, Service
from receiver.store.backends import open_backend
from receiver.store.errors import StoreError
from receiver.store.inbox import count_by_status
from receiver.sync.catchup import CatchupService
from receiver.sync.lease import SyncLease
from receiver.sync.subscriptions import SubscriptionService
from receiver.web.connections import ConnectionGuard, GuardedHttpProtocol
from receiver.web.webhook import LOG_FIELDS, RETRY_AFTER_SECONDS, Ingest, Message, Receive, Scope, Send
from receiver.web.worker_peer import WorkerPeer
from receiver.worker.dispatcher import Dispatcher
from receiver.worker.pipelines import Pipelines, load_pipelines
from receiver.worker.retention import RetentionService

log = logging.getLogger("receiver.app")
access_log = logging.getLogger("receiver.access")

READY_PROBE_TIMEOUT = 3.0
READY_FRESH_SECONDS = 10.0
"""A commit that wrote within this long answers /readyz by itself; after that (or after a failed commit) /readyz makes
a probe write. Kubernetes asks every 10 s by default (5 in deploy/kubernetes): a receiver that takes pushes never
probes, an idle one writes about once per readiness check."""
_encode_json = json.JSONEncoder(ensure_ascii=False).encode

ServicesSpec = Sequence[Service] | Callable[[Runtime], Sequence[Service]]


@dataclass(frozen=True)
class Prepared:
    """What `prepare` checked and loaded: the pipelines, and the key that signs Maskinporten grants (None when
    `[maskinporten]` is not configured)."""

    pipelines: Pipelines
    key: SigningKey | None


def prepare(config: Config) -> Prepared:
    """Everything `serve` checks before it listens that needs neither the network nor the store: every pipeline's
    handlers and their options (plugins included), and the Maskinporten key. ConfigError naming the key on the first
    problem; `altinn-receiver config validate` runs exactly this."""
    pipelines = load_pipelines(config)
    key = load_signing_key(config.maskinporten) if config.maskinporten.configured else None
    return Prepared(pipelines, key)


def build_services(runtime: Runtime, pipelines: Pipelines | None = None) -> list[Service]:
    """The background services, in the order they start (they stop in reverse): the dispatcher, the sync lease,
    subscriptions and catch-up (which run only while this process holds the lease), and retention. This is what a
    worker runs (`serve --role worker`, the worker process of `serve`, and `serve --single-process`); the webhook role
    runs none. `pipelines`: already loaded from the same config (the serve command checks them before starting), else
    loaded here."""
    if pipelines is None:
        pipelines = load_pipelines(runtime.config)
    lease = SyncLease()
    return [
        Dispatcher(pipelines, runtime.config.dispatch),
        lease,
        SubscriptionService(lease=lease),
        CatchupService(lease=lease),
        RetentionService(),
    ]


class AccessLog:
    """One JSON line per HTTP request on stdout (uvicorn's own access log is off: it would print `?code=`).

    The line has the shape `receiver.observability.logs.JsonFormatter` writes, but is built here directly: the
    logging module's record and formatter machinery, and `redact` over every field, cost more than the whole webhook
    otherwise does.
    It is written only when `receiver.access` is enabled for info. The query string, the only place a code or token
    can arrive, is redacted; the other fields are the request line, the peer and the event's own attributes.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            write_access_line(scope, status, time.perf_counter() - started)


def write_access_line(scope: Scope, status: int, seconds: float) -> None:
    client = scope.get("client")
    method, path = scope["method"], scope["path"]
    entry = {
        "ts": utc_stamp(time.time()),
        "level": "info",
        "logger": "receiver.access",
        "msg": f"{method} {path} {status}",
        "method": method,
        "path": path,
        "query": redact_query(scope.get("query_string", b"")),
        "http_status": status,
        "ms": round(seconds * 1000, 2),
        "client": client[0] if client else "",
        **scope.get(LOG_FIELDS, {}),
    }
    emit_json_line(access_log, _encode_json(entry))


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def healthz(request: Request) -> Response:
    """The process is alive and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when a push would be stored now (store writable, not draining): the last commit says so when it wrote
    recently, else a probe write does. Services are reported, never decisive. In the webhook process of `serve`, also
    only when the worker process is ready (asked meanwhile), and its services are the worker's."""
    runtime = runtime_of(request)
    peer: WorkerPeer | None = request.app.state.worker
    # Draining answers 503 anyway, and at once: neither a probe write nor the worker is waited for.
    asking = asyncio.ensure_future(peer.readiness()) if peer is not None and not runtime.draining else None
    store = runtime.writer.broken or runtime.writer.last_error or "writable"
    if not runtime.draining:
        try:
            await asyncio.wait_for(runtime.writer.ready(READY_FRESH_SECONDS), timeout=READY_PROBE_TIMEOUT)
            store = "writable"
        except StoreError as exc:
            store = str(exc)
        except TimeoutError:
            store = f"no commit within {READY_PROBE_TIMEOUT:g}s"
    ready = store == "writable" and not runtime.draining
    body = {"ready": ready, "store": store, "draining": runtime.draining, "services": runtime.service_status()}
    if asking is not None:
        worker_ready, worker = await asking
        body["services"] = worker.pop("services", {})
        if "console" in worker:  # the console runs with the worker
            body["console"] = worker.pop("console")
        body["worker"] = worker
        body["ready"] = ready = ready and worker_ready
    if request.app.state.console_url:
        body["console"] = request.app.state.console_url
    headers = {} if ready else {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        runtime.metrics.set_inbox_counts(await count_by_status(runtime.store))
        await runtime.metrics.ops.refresh(runtime.store)
    except Exception as exc:  # a scrape must still show the counters when the store cannot be read
        log.warning("cannot count inbox events for /metrics", extra={"error": str(exc)})
    runtime.metrics.inflight.set(runtime.inflight)
    writer = runtime.writer
    runtime.metrics.store_writable.set(0 if writer.broken or writer.last_error or not writer.alive else 1)
    exposition = runtime.metrics.render()
    peer: WorkerPeer | None = request.app.state.worker
    worker = await peer.metrics() if peer is not None else None
    if worker is not None:
        exposition = merge_expositions(exposition.decode(), worker)
    return Response(exposition, media_type=CONTENT_TYPE)


class ReceiverApp(Starlette):
    """Starlette, except that the webhook path goes straight to its endpoint (with the access log).

    The webhook is the hot path: Altinn's pushes skip the error and exception middleware and the router, which
    each cost a wrapper per request, and `Ingest.respond` reports the status it sent, so the access log needs no
    wrapper around `send` either. An exception there still becomes a 500 from uvicorn, logged.
    """

    def __init__(self, webhook_path: str | None, webhook: Ingest, connections: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook_path = webhook_path
        """None when this process takes no pushes (the worker role): the path is then 404, as any unknown one."""
        self.webhook = webhook
        self.connections = connections
        """The limits on connections that the server's protocol (`GuardedHttpProtocol`) finds here."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.webhook_path:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        if not access_log.isEnabledFor(logging.INFO):
            await self.webhook.respond(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        try:
            status = await self.webhook.respond(scope, receive, send)
        finally:
            write_access_line(scope, status, time.perf_counter() - started)


def create_app(
    config: Config,
    *,
    services: ServicesSpec | None = None,
    events: bool = True,
    worker_url: str | None = None,
    access_lines: bool = True,
) -> ReceiverApp:
    """The receiver as an ASGI app. `services` replaces `build_services` (a list, or a function of the runtime).
    `events`: whether it takes pushes on `[receiver] path` (the worker role does not: 404 there). `worker_url`: the
    worker process's own address, for the webhook process of `serve`, whose /readyz and /metrics include it.
    `access_lines`: whether its requests are in the access log (not the worker process's of `serve`, whose one
    client is the webhook process, which logs each request it passes on)."""
    ingest = Ingest(config.receiver)
    connections = ConnectionGuard(config.receiver)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            runtime = await Runtime.open(config)
        except StoreError as exc:
            app.state.startup_error = str(exc)
            log.error("cannot open the store", extra={"store": open_backend(config.store).location, "error": str(exc)})
            raise
        app.state.runtime = runtime
        ingest.runtime = runtime
        runtime.metrics.registry.register(connections.collector())
        if services is None:
            chosen: Sequence[Service] = build_services(runtime)
        else:
            chosen = services(runtime) if callable(services) else services
        runtime.start_services(chosen)
        if worker_url is not None:
            app.state.worker = WorkerPeer(worker_url)
        log.info(
            "accepting pushes" if events else "serving without the webhook",
            extra={
                "path": config.receiver.path,
                "store": runtime.backend.location,
                "services": [service.name for service in chosen],
            },
        )
        try:
            yield
        finally:
            await runtime.drain()
            if app.state.worker is not None:
                await app.state.worker.aclose()
            await runtime.close()
            log.info("stopped")

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    middleware = [Middleware(AccessLog)] if access_lines else []
    webhook_path = config.receiver.path if events else None
    app = ReceiverApp(webhook_path, ingest, connections, routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.runtime = None
    app.state.startup_error = ""
    app.state.worker = None
    app.state.console_url = ""  # where the console listens: `serve` sets it in the process that serves it
    return app


def server_options(config: Config) -> dict[str, Any]:
    """uvicorn settings the receiver needs wherever it runs (the serve command, tests, the demo).

    Proxy headers are off because the webhook decides itself whose X-Forwarded-For to believe
    (`receiver.forwarded_allow_ips`); uvicorn's default would believe 127.0.0.1. The access log is the app's own.
    The protocol is uvicorn's httptools one with `read_timeout` and `max_connections` (`receiver.web.connections`:
    it serves only an app made by `create_app`); nothing here speaks WebSocket.
    """
    return {
        "host": config.receiver.host,
        "port": config.receiver.port,
        "proxy_headers": False,
        "access_log": False,
        "server_header": False,
        "log_config": None,
        "lifespan": "on",
        "timeout_graceful_shutdown": max(config.receiver.shutdown_timeout, 1.0),
        "timeout_keep_alive": config.receiver.keepalive_timeout,
        "http": GuardedHttpProtocol,
        "ws": "none",
    }
