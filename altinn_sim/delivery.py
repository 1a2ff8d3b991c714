"""Outbound pushes: one POST per event per subscription, retried on Altinn's schedule, then dead-lettered.

Altinn Events has two push paths (correspondence contract §7.10; events contract §2, §4.3, §4.4) and which one
production runs is not known, so both are here as `PushSchedule`s; every delay is divided by `time_scale`. Like
Altinn's queues (`ListenerCount: 20` per pod, §4.6), at most `LISTENERS` attempts of a kind are in flight at once;
a delivery waiting for its next retry holds none. The bound also keeps httpx's connection pool small: it scans every
queued request against every connection each time one finishes, which made hundreds of concurrent attempts crawl.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from altinn_sim.clock import Clock
from altinn_sim.cloudevent import PUSH_CONTENT_TYPE, serialise
from receiver.observability.logs import redact
from receiver.timeutil import now_iso


@dataclass(frozen=True)
class PushSchedule:
    """One of Altinn Events' push paths: the waits before each retry, in Altinn's seconds, and the HTTP timeout."""

    name: str
    push_delays: tuple[float, ...]
    validation_delays: tuple[float, ...]
    timeout: float
    """Seconds each push may take (EventsOutboundSettings.RequestTimeout); never scaled."""


FUNCTIONS = PushSchedule(
    "functions",
    # Events.Functions/Services/RetryBackoffService.cs: a failed push is requeued with DequeueCount + 1 and the
    # visibility GetVisibilityTimeout gives it, until the count passes _maxDequeueCount = 12 (l. 19, 54-56, 93-105):
    # 1 attempt + 12 requeues = 13 attempts over 46 h 47 min.
    push_delays=(10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200, 43200),
    # Events.Functions/host.json: a failed validation function is retried by the queue trigger after
    # visibilityTimeout 00:00:30 until maxDequeueCount 5 (l. 20-21): 5 attempts, 2 minutes.
    validation_delays=(30, 30, 30, 30),
    timeout=300,  # Events.Functions/Configuration/EventsOutboundSettings.cs l. 13
)
WOLVERINE = PushSchedule(
    "wolverine",
    # Events/appsettings.json OutboundQueuePolicy (l. 59-62), applied by OutboundEventHandlerPolicy.cs l. 39-41:
    # 1 attempt + 1 cooldown retry + 10 scheduled retries = 12 attempts over 34 h 47 min.
    push_delays=(10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200),
    # ValidationQueuePolicy (l. 49-52) by ValidationEventHandlerPolicy.cs l. 41-43:
    # 1 attempt + 3 cooldown retries + 5 scheduled retries = 9 attempts over about 8 minutes.
    validation_delays=(1, 5, 10, 30, 60, 120, 120, 120),
    timeout=45,  # Events/Configuration/EventsOutboundSettings.cs l. 11; appsettings.json l. 16
)
PUSH_SCHEDULES = {schedule.name: schedule for schedule in (FUNCTIONS, WOLVERINE)}
DEFAULT_PUSH_SCHEDULE = FUNCTIONS.name
"""Altinn's default config runs the Functions path: appsettings.json l. 39-40 leave the Wolverine outbound and
validation listeners off."""
LISTENERS = 20
"""Attempts in flight at once per kind of delivery (events and validations are separate queues at Altinn)."""

log = logging.getLogger("altinn_sim.delivery")


@dataclass
class Delivery:
    """One event on its way to one subscription, as `GET /_sim/state` shows it."""

    id: int
    kind: str
    subscription_id: int
    event_id: str
    endpoint: str
    status: str = "pending"
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subscription_id": self.subscription_id,
            "event_id": self.event_id,
            "endpoint": self.endpoint,
            "status": self.status,
            "attempt_count": len(self.attempts),
            "attempts": self.attempts,
        }


class Deliverer:
    """Runs deliveries as tasks on the server's event loop; `start` and `stop` belong to the app's lifespan."""

    def __init__(self, clock: Clock, timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: dict[str, asyncio.Semaphore] = {}

    async def start(self) -> None:
        # One set of listeners pushes events, another validations: never more attempts than connections.
        limits = httpx.Limits(max_connections=2 * LISTENERS, max_keepalive_connections=2 * LISTENERS)
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=True, limits=limits)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    @property
    def dead_letters(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status == "dead_letter"]

    def send(
        self,
        kind: str,
        subscription_id: int,
        endpoint: str,
        event: dict[str, Any],
        delays: Sequence[float],
        on_success: Callable[[], None] | None = None,
    ) -> Delivery:
        delivery = Delivery(next(self._ids), kind, subscription_id, str(event["id"]), redact(endpoint))
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(
            self._run(delivery, endpoint, serialise(event), delays, on_success)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery

    async def _run(
        self,
        delivery: Delivery,
        endpoint: str,
        body: bytes,
        delays: Sequence[float],
        on_success: Callable[[], None] | None,
    ) -> None:
        listeners = self._listeners.setdefault(delivery.kind, asyncio.Semaphore(LISTENERS))
        for delay in (0.0, *delays):
            await self.clock.sleep(delay)
            async with listeners:
                outcome = await self._attempt(endpoint, body)
            delivery.attempts.append({"at": now_iso(), "outcome": outcome})
            if outcome.startswith("2"):
                delivery.status = "delivered"
                if on_success is not None:
                    on_success()
                return
        delivery.status = "dead_letter"
        log.info(
            "delivery dead-lettered",
            extra={"delivery": delivery.id, "kind": delivery.kind, "endpoint": delivery.endpoint},
        )

    async def _attempt(self, endpoint: str, body: bytes) -> str:
        """The response status as text, or the name of the transport error."""
        assert self._client is not None, "Deliverer.start() was not called"
        try:
            response = await self._client.post(endpoint, content=body, headers={"Content-Type": PUSH_CONTENT_TYPE})
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return str(response.status_code)
