"""Altinn's scheduled background jobs (Hangfire's `Schedule`): the confirmation check 4 s after `confirm`, the
due-date job at `dueDateTime`, an attachment's expiry at its `expirationTime`. A job runs on the server's event loop
once Altinn's wait, divided by `time_scale`, has passed; jobs scheduled before the server starts (the seed) wait
for it to start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from altinn_sim.clock import Clock
from receiver.timeutil import now

Job = Callable[[], object]
log = logging.getLogger("altinn_sim.scheduler")


class Scheduler:
    """`start` and `stop` belong to the app's lifespan; `after` and `at` may be called from any thread."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._before_start: list[tuple[float, Job]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        waiting, self._before_start = self._before_start, []
        for deadline, job in waiting:
            self._arm(max(0.0, deadline - self.clock.now()), job)

    async def stop(self) -> None:
        self._loop = None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def after(self, seconds: float, job: Job) -> None:
        """Run `job` once Altinn's `seconds` have passed (at once if not positive)."""
        delay = self.clock.scaled(max(0.0, seconds))
        loop = self._loop
        if loop is None:
            self._before_start.append((self.clock.now() + delay, job))
        else:
            loop.call_soon_threadsafe(self._arm, delay, job)

    def at(self, moment: datetime, job: Job) -> None:
        """Run `job` when Altinn's clock reaches `moment`: the wait from now is scaled like any other."""
        self.after((moment - now()).total_seconds(), job)

    def _arm(self, delay: float, job: Job) -> None:
        if self._loop is None:
            return  # stopped meanwhile

        def run() -> None:
            self._timers.discard(timer)
            try:
                job()
            except Exception:
                # Hangfire logs a failed job and moves on; so does the simulator.
                log.exception("scheduled job failed")

        timer = self._loop.call_later(delay, run)
        self._timers.add(timer)
