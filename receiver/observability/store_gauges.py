"""Alerting metrics read from the store when Prometheus scrapes: the age of the oldest unprocessed event, and how long
ago Altinn last pushed and a catch-up run last succeeded.

They come from the store, not from counters in memory, so they are right after a restart and agree with `stats`.
The other alerting signals live where they are produced: dead events are `altinn_receiver_inbox_events{status="dead"}`
(receiver/observability/metrics.py) and validation is `altinn_receiver_subscription_validated`
(receiver/sync/subscriptions.py).
docs/operations.md has the alert rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from receiver.store.interface import Database
from receiver.store.operations import UNPROCESSED, last_push_at, oldest_event
from receiver.store.state import LAST_CATCHUP_AT, get_fact
from receiver.timeutil import now, parse_iso

OLDEST_UNPROCESSED = "altinn_receiver_oldest_unprocessed_age_seconds"
LAST_PUSH = "altinn_receiver_last_push_age_seconds"
LAST_CATCHUP = "altinn_receiver_last_catchup_age_seconds"


@dataclass(frozen=True)
class Moments:
    """When things last happened, as read from the store; None for never (or nothing waiting)."""

    oldest_unprocessed: datetime | None = None
    last_push: datetime | None = None
    last_catchup: datetime | None = None


async def read_moments(conn: Database) -> Moments:
    oldest = await oldest_event(conn, UNPROCESSED)
    push = await last_push_at(conn)
    catchup = await get_fact(conn, LAST_CATCHUP_AT)
    return Moments(
        oldest_unprocessed=parse_iso(oldest.received_at) if oldest is not None else None,
        last_push=parse_iso(push) if push else None,
        last_catchup=parse_iso(catchup) if catchup else None,
    )


class OpsMetrics:
    """A collector on the receiver's registry. `refresh` reads the store (the /metrics endpoint calls it before
    rendering); ages are computed at collection, so they keep growing even while the store cannot be read."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.moments = Moments()
        registry.register(self)

    async def refresh(self, conn: Database) -> None:
        self.moments = await read_moments(conn)

    def describe(self) -> Iterator[Metric]:
        return self._families(Moments(), now())

    def collect(self) -> Iterator[Metric]:
        return self._families(self.moments, now())

    @staticmethod
    def _families(moments: Moments, at: datetime) -> Iterator[Metric]:
        def age(moment: datetime | None) -> float:
            return max((at - moment).total_seconds(), 0.0) if moment is not None else 0.0

        yield GaugeMetricFamily(
            OLDEST_UNPROCESSED,
            "Age of the oldest event received but not yet handled (pending, retrying or processing); 0 when none.",
            value=age(moments.oldest_unprocessed),
        )
        # No sample until it has happened once: "never" is not a number of seconds (alert on absent() if needed).
        for name, moment, what in (
            (LAST_PUSH, moments.last_push, "Altinn last pushed an event or a validation to the webhook"),
            (LAST_CATCHUP, moments.last_catchup, "a catch-up run last reached the end of the pull API"),
        ):
            family = GaugeMetricFamily(name, f"Seconds since {what}; absent until it has happened.")
            if moment is not None:
                family.add_metric([], age(moment))
            yield family
