"""What one running receiver shares: config, store, Altinn clients, metrics, the draining flag and its services.

The app's lifespan opens a `Runtime`, starts its services in the background (the webhook must already accept
pushes while subscriptions are reconciled: Altinn sends its validation event then), and on shutdown drains it:
new pushes get 503, in-flight commits finish, services stop in reverse order before `shutdown_timeout` runs out.

Every service that calls Altinn uses `runtime.altinn`: one token cache (one Maskinporten grant per scope set, not
one per service) and one connection pool, closed after the services have stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from receiver.altinn import AltinnClients
from receiver.config import Config, ConfigError, StoreConfig
from receiver.observability.metrics import Metrics
from receiver.store.backends import open_backend
from receiver.store.interface import Backend, Database, Writer

log = logging.getLogger(__name__)


def prepare_store(backend: Backend, store: StoreConfig) -> None:
    """What `serve` does to its store before it listens: check an existing store's integrity where the backend has
    such a check (SQLite's quick_check, unless `[store] check_on_start` is false), then migrate it (created when
    missing). StoreError saying what is wrong and what to do when the store is damaged, an empty file, or cannot be
    migrated."""
    if store.check_on_start:
        checked = backend.check_integrity()
        if checked is not None:
            log.info("store checked", extra={"store": backend.location, "seconds": round(checked.seconds, 3),
                                             "bytes": checked.bytes})  # fmt: skip
    migrate_store(backend)


def migrate_store(backend: Backend) -> None:
    """Bring the store (created when missing) to this code's schema, with a log line when that changed it;
    StoreError when it cannot (StoreVersionError when it is newer than this code)."""
    migrated = backend.migrate()
    if migrated.applied:
        log.info(
            "store migrated",
            extra={
                "store": backend.location,
                "from_version": migrated.before.version,
                "to_version": migrated.version,
                "applied": [f"{m.version} {m.name}" for m in migrated.applied],
            },
        )


@runtime_checkable
class Service(Protocol):
    """A background service: started after the webhook accepts pushes, stopped in reverse order on shutdown."""

    name: str

    async def start(self, runtime: Runtime) -> None:
        """Start (may take a while: reconcile, catch up); long-running work goes into tasks the service owns."""

    async def stop(self, deadline: float) -> None:
        """Stop before `deadline` (a `time.monotonic()` value), finishing work in flight if time allows."""

    def status(self) -> dict[str, Any]:
        """A small JSON-able summary for `/readyz`'s body (never decides the status code)."""


class Runtime:
    """The resources of one running receiver; `open()` builds it, `drain()` then `close()` end it."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        store: Database,
        writer: Writer,
        metrics: Metrics,
        altinn: AltinnClients | ConfigError,
    ) -> None:
        """`altinn`: the shared clients, or the ConfigError that kept the config from making them."""
        self.config = config
        self.backend = backend
        self.store = store
        self.writer = writer
        self.metrics = metrics
        self._altinn = altinn
        self.draining = False
        self.services: list[Service] = []
        self.service_errors: dict[str, str] = {}
        self.inflight = 0
        # Set when new events are committed to the inbox: wakes the dispatcher without waiting for its next poll.
        self.new_events = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started: list[Service] = []
        self._start_task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, config: Config) -> Runtime:
        """Migrate the store (created when missing) to this code's schema, open it and the inbox writer, and make the
        Altinn clients when the config says how to call Altinn; raises `StoreError` when the store cannot be opened
        (StoreVersionError when it is newer than this code)."""
        backend = open_backend(config.store)
        await asyncio.to_thread(migrate_store, backend)
        store = await backend.connect()
        try:
            writer = await backend.writer()
        except BaseException:
            await store.close()
            raise
        metrics = Metrics()
        return cls(config, backend, store, writer, metrics, _altinn_clients(config, metrics))

    @property
    def altinn(self) -> AltinnClients | None:
        """The Altinn clients every service shares; None when `[altinn]`/`[maskinporten]` cannot make them."""
        return self._altinn if isinstance(self._altinn, AltinnClients) else None

    def require_altinn(self) -> AltinnClients:
        """The shared Altinn clients, for a service that cannot work without them; otherwise the ConfigError that
        says what the config lacks (the service's start fails with it, shown in `/readyz`; pushes still land)."""
        if isinstance(self._altinn, ConfigError):
            raise ConfigError(self._altinn.key, self._altinn.problem)
        return self._altinn

    # --- pushes in flight ---

    def enter(self) -> None:
        """A push passed the draining check and is now in flight until `leave()`."""
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    def notify_new_events(self) -> None:
        """New events are in the inbox (a push or a catch-up page committed)."""
        self.new_events.set()

    # --- services ---

    def start_services(self, services: Sequence[Service]) -> None:
        """Start `services` in order in the background; the webhook keeps answering meanwhile."""
        self.services = list(services)
        self._start_task = asyncio.create_task(self._start_in_order(), name="start-services")

    async def _start_in_order(self) -> None:
        for service in self.services:
            if self.draining:
                return
            self._started.append(service)
            try:
                await service.start(self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.service_errors[service.name] = f"{type(exc).__name__}: {exc}"
                log.error("service failed to start", extra={"service": service.name}, exc_info=True)
            else:
                log.info("service started", extra={"service": service.name})

    async def wait_started(self) -> None:
        """Until every service's start has returned (tests and the demo wait on this)."""
        if self._start_task is not None:
            await asyncio.shield(self._start_task)

    def service_status(self) -> dict[str, dict[str, Any]]:
        statuses: dict[str, dict[str, Any]] = {}
        for service in self.services:
            try:
                status = dict(service.status())
            except Exception as exc:
                status = {"status_error": f"{type(exc).__name__}: {exc}"}
            if service not in self._started:
                status["waiting_to_start"] = True
            if service.name in self.service_errors:
                status["start_error"] = self.service_errors[service.name]
            statuses[service.name] = status
        return statuses

    # --- shutdown ---

    async def drain(self) -> None:
        """Refuse new pushes, let those in flight commit, stop services in reverse; safe to call more than once."""
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(), name="drain")
        await asyncio.shield(self._drain_task)

    async def _drain(self) -> None:
        self.draining = True
        timeout = self.config.receiver.shutdown_timeout
        deadline = time.monotonic() + timeout
        log.info("draining", extra={"inflight": self.inflight, "shutdown_timeout_s": timeout})
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
            await asyncio.gather(self._start_task, return_exceptions=True)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=_remaining(deadline))
        except TimeoutError:
            log.warning("pushes still in flight at the shutdown deadline", extra={"inflight": self.inflight})
        for service in reversed(self._started):
            try:
                await asyncio.wait_for(service.stop(deadline), timeout=_remaining(deadline) + 1.0)
            except Exception:
                log.error("service did not stop cleanly", extra={"service": service.name}, exc_info=True)
            else:
                log.info("service stopped", extra={"service": service.name})
        log.info("drained", extra={"seconds": round(timeout - _remaining(deadline), 3)})

    async def close(self) -> None:
        """After `drain()`: close the Altinn clients, the writer (committing what is queued) and the store."""
        if self.altinn is not None:
            await self.altinn.aclose()
        await self.writer.aclose()
        await self.store.close()


def _altinn_clients(config: Config, metrics: Metrics) -> AltinnClients | ConfigError:
    """The receiver's one set of Altinn clients, counting their calls in `metrics`, or why the config cannot make them
    (kept for the services that need them to report: a receiver without Altinn still stores pushes)."""
    try:
        return AltinnClients.from_config(config, registry=metrics.registry)
    except ConfigError as exc:
        return exc


async def stop_task(task: asyncio.Task[None] | None, deadline: float) -> None:
    """Cancel a service's task and wait for it to end, at most until `deadline` (a `time.monotonic()` value)."""
    if task is not None:
        task.cancel()
        await asyncio.wait({task}, timeout=_remaining(deadline))


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


ServicesFactory = Callable[[Runtime], list[Service]]
