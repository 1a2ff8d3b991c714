"""The retention service: at start and every hour, prune what `[retention]` says the inbox no longer keeps
(receiver/store/retention.py), in batches, on a connection of its own.

Its state is in `/readyz`'s services body; `altinn_receiver_retention_pruned_total{what="payload"|"dead"}` counts
payloads dropped and dead events deleted. A run that fails (the store locked or full) is logged and shown, and the
next run takes up what is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from receiver.config import RetentionConfig
from receiver.durations import format_duration
from receiver.runtime import stop_task
from receiver.store.errors import StoreError
from receiver.store.interface import Database
from receiver.store.retention import delete_dead, prune_payloads
from receiver.timeutil import iso_after, now_iso

if TYPE_CHECKING:
    from receiver.runtime import Runtime

log = logging.getLogger("receiver.retention")

INTERVAL = 3600.0
BATCH = 500
PAUSE = 0.05
"""Seconds between two full batches: the webhook's writer takes the write lock meanwhile."""

Step = Callable[[Database, str, int], Awaitable[int]]


class RetentionService:
    """Prunes the inbox at start and every `interval` seconds (`receiver.runtime.Service`)."""

    name = "retention"

    def __init__(self, *, interval: float = INTERVAL, batch: int = BATCH, pause: float = PAUSE) -> None:
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self._settings = RetentionConfig()
        self._task: asyncio.Task[None] | None = None
        self._db: Database | None = None
        self._state = "not started"
        self._runs = 0
        self._last_run_at = ""
        self._totals = {"payload": 0, "dead": 0}
        self._error = ""

    async def start(self, runtime: Runtime) -> None:
        self._settings = runtime.config.retention
        pruned = Counter(
            "altinn_receiver_retention_pruned",
            "Inbox rows retention pruned: payloads of finished events dropped, dead events deleted.",
            ["what"],
            registry=runtime.metrics.registry,
        )
        self._counters = {what: pruned.labels(what) for what in self._totals}
        # An outcome lost to a power cut only means the rows are pruned again: no fsync per batch.
        self._db = await runtime.backend.connect(background=True)
        self._task = asyncio.create_task(self._every_interval(self._db), name="retention")
        self._state = "running"

    async def stop(self, deadline: float) -> None:
        await stop_task(self._task, deadline)
        if self._db is not None:
            await self._db.close()
        self._state = "stopped"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": self._state,
            "done": format_duration(self._settings.done),
            "dead": format_duration(self._settings.dead),
            "runs": self._runs,
            "last_run_at": self._last_run_at,
            "pruned_payloads": self._totals["payload"],
            "deleted_dead": self._totals["dead"],
        }
        if self._error:
            body["error"] = self._error
        return body

    async def _every_interval(self, db: Database) -> None:
        while True:
            await self.run_once(db)
            await asyncio.sleep(self.interval)

    async def run_once(self, db: Database) -> None:
        try:
            payloads = await self._drain(db, prune_payloads, self._settings.done, "payload")
            dead = await self._drain(db, delete_dead, self._settings.dead, "dead")
        except StoreError as exc:
            self._error = str(exc)
            log.warning("retention run failed; the next one takes up what is left", extra={"error": self._error})
            return
        self._error = ""
        self._runs += 1
        self._last_run_at = now_iso()
        if payloads or dead:
            log.info("retention pruned the inbox", extra={"payloads": payloads, "dead_deleted": dead})

    async def _drain(self, db: Database, step: Step, keep: float, what: str) -> int:
        """Run `step` in batches until a batch comes back short; how many rows it changed."""
        total = 0
        while True:
            count = await step(db, iso_after(-keep), self.batch)
            total += count
            self._totals[what] += count
            self._counters[what].inc(count)
            if count < self.batch:
                return total
            await asyncio.sleep(self.pause)
