"""One process at a time reconciles subscriptions and catches up, among all the processes that share a store.

`SyncLease` is a background service that holds the store's `sync` lease (receiver/store/leases.py) or waits for
it: it tries to take the lease every third of its time to live, and renews it as often while it holds it.
`SubscriptionService` and `CatchupService` run their loops through `while_held`, which starts them when this
process takes the lease and cancels them when it loses it. Another process takes over within one lease time and
one try (see `ttl_for`: within one `[catchup] interval`) after the holder dies, at its next try after it stops.

A holder that cannot reach the store keeps the lease only as long as its last renewal lasts (by its own monotonic
clock, counted from before the renewal was sent): by the time another process may take it over, it has stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from receiver.observability.logs import redact
from receiver.runtime import stop_task
from receiver.store import leases
from receiver.store.errors import StoreError
from receiver.store.interface import Database

if TYPE_CHECKING:
    from receiver.runtime import Runtime

log = logging.getLogger("receiver.lease")

NAME = "sync"
"""The lease of subscription reconciliation and catch-up."""
RELEASED = "released"
LONGEST_TTL = 30.0
"""A lease lasts at most this long without a renewal (seconds)."""
SHORTEST_TTL = 5.0
"""And at least this long: a store busy for a moment (SQLite waits 2 s for a lock) must not cost the holder its
lease."""


def ttl_for(interval: float) -> float:
    """How long the lease lasts without a renewal for a `[catchup] interval`: half of it, within SHORTEST_TTL and
    LONGEST_TTL, so that a takeover (the lease running out, then the next try, a third of it later) comes within one
    interval of 10 s or more (within 7 s for shorter ones)."""
    return min(max(interval / 2, SHORTEST_TTL), LONGEST_TTL)


def this_process() -> str:
    """How the store names this process as a holder: `hostname:pid` (a pod's name in Kubernetes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SyncLease:
    """The `sync` lease, held or waited for in the background; its status in `/readyz` says who holds it."""

    name = "sync_lease"

    def __init__(self) -> None:
        self.holder = this_process()
        self.ttl = LONGEST_TTL
        """Seconds the lease lasts without a renewal: `ttl_for` the `[catchup] interval`, set at start."""
        self.held = asyncio.Event()
        """Set while this process holds the lease."""
        self.free = asyncio.Event()
        """Set while it does not."""
        self.free.set()
        self.decided = asyncio.Event()
        """Set once the first try has said whether this process holds the lease (or failed to)."""
        self._lease: leases.Lease | None = None
        self._valid_until = 0.0
        self._error = ""
        self._task: asyncio.Task[None] | None = None
        self._db: Database | None = None
        self._gauge: Gauge | None = None

    @property
    def every(self) -> float:
        """Seconds between tries and renewals."""
        return self.ttl / 3

    async def start(self, runtime: Runtime) -> None:
        """Returns after the first try: holding the lease, or knowing that another process does."""
        self.ttl = ttl_for(runtime.config.catchup.interval)
        self._db = runtime.store
        self._gauge = Gauge(
            "altinn_receiver_sync_lease_held",
            "1 while this process holds the sync lease (reconciles subscriptions and catches up), else 0",
            registry=runtime.metrics.registry,
        )
        self._task = asyncio.create_task(self._hold(runtime.store), name="sync-lease")
        await self.decided.wait()

    async def stop(self, deadline: float) -> None:
        """Stop trying; a holder releases the lease, so that another process takes it at its next try."""
        await stop_task(self._task, deadline)
        if self.held.is_set() and self._db is not None:
            self._lose(RELEASED)
            try:
                await asyncio.wait_for(
                    leases.release(self._db, NAME, self.holder), max(deadline - time.monotonic(), 0.1)
                )
            except (StoreError, TimeoutError) as exc:
                log.warning("could not release the sync lease; it runs out by itself", extra={"error": str(exc)})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"this_process": self.holder, "held_here": self.held.is_set()}
        if self._lease is not None:
            held = self.held.is_set() or self._lease.holder != self.holder
            body.update(
                holder=self._lease.holder if held else "",
                since=self._lease.since if held else "",
                term=self._lease.term,
                expires_at=self._lease.expires_at,
            )
        if self._error:
            body["error"] = self._error
        return body

    async def while_held(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` (a service's loop) whenever this process holds the lease: started when it takes the lease,
        cancelled when it loses it, started again when it takes it again. Returns (or raises) when `work` ends of
        itself."""
        while True:
            await self.held.wait()
            running = asyncio.ensure_future(work())
            losing = asyncio.ensure_future(self.free.wait())
            try:
                await asyncio.wait({running, losing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                losing.cancel()
                running.cancel()
                await asyncio.gather(running, losing, return_exceptions=True)
            if not running.cancelled():
                return running.result()

    async def first_turn(self, done: asyncio.Event) -> None:
        """After the first try, until `done` is set by the work, or this process does not hold the lease: what a
        service's `start` waits for, so that the services after it start at once on a process that waits for it."""
        await self.decided.wait()
        if not self.held.is_set():
            return
        waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(self.free.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    def standby(self) -> bool:
        """Whether another process holds the lease (or may: this one does not)."""
        return not self.held.is_set()

    async def _hold(self, db: Database) -> None:
        try:
            while True:
                await self._try(db)
                self.decided.set()
                await asyncio.sleep(self.every)
        finally:
            self.decided.set()

    async def _try(self, db: Database) -> None:
        ttl = self.ttl
        asked = time.monotonic()
        if self.held.is_set() and asked >= self._valid_until:  # this process stalled: another may hold it by now
            self._lose("it ran out before this process could renew it")
        try:
            lease = await leases.take(db, NAME, self.holder, ttl)
            if lease is None:
                lease = await leases.current(db, NAME)
        except StoreError as exc:
            self._error = redact(str(exc))
            if self.held.is_set() and time.monotonic() + self.every >= self._valid_until:
                self._lose("cannot renew it: " + self._error)
            return
        self._error = ""
        self._lease = lease
        if lease is not None and lease.holder == self.holder and lease.expires_at > lease.renewed_at:
            self._valid_until = asked + ttl
            if not self.held.is_set():
                self.free.clear()
                self.held.set()
                self._show()
                log.info("took the sync lease: this process reconciles subscriptions and catches up",
                         extra={"holder": self.holder, "term": lease.term, "since": lease.since})  # fmt: skip
        elif self.held.is_set():
            self._lose(f"{lease.holder if lease else 'nobody'} holds it now")

    def _show(self) -> None:
        if self._gauge is not None:
            self._gauge.set(1 if self.held.is_set() else 0)

    def _lose(self, why: str) -> None:
        self.held.clear()
        self.free.set()
        self._show()
        level = logging.INFO if why == RELEASED else logging.WARNING
        log.log(level, "gave up the sync lease" if why == RELEASED else "lost the sync lease",
                extra={"holder": self.holder, "reason": why})  # fmt: skip


def held(lease: SyncLease | None, work: Callable[[], Coroutine[Any, Any, None]]) -> Coroutine[Any, Any, None]:
    """A service's loop as its task runs it: whenever this process holds `lease`, or always when there is none."""
    return work() if lease is None else lease.while_held(work)


async def first_turn(lease: SyncLease | None, done: asyncio.Event) -> None:
    """What a service's `start` waits for: until its loop has set `done`, unless another process holds `lease`."""
    if lease is None:
        await done.wait()
    else:
        await lease.first_turn(done)
