"""Prometheus metrics of one running receiver, in a registry of its own (tests run many apps in one process).

Here: the webhook's, the inbox by status, the store's writability, the build and the process (CPU, memory, open
files: prometheus_client's process collector, read from /proc). The services add their own to `registry`: the
dispatcher (runs, steps), the Altinn clients (calls, tokens), catch-up, subscriptions, retention.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from receiver import __version__
from receiver.observability.store_gauges import OpsMetrics
from receiver.store.records import CHANNELS
from receiver.store.schema import INBOX_STATUSES

CONTENT_TYPE = CONTENT_TYPE_LATEST
REJECT_REASONS = (
    "forbidden",
    "unauthorized",
    "method",
    "unsupported_media_type",
    "too_large",
    "invalid",
    "draining",
    "store_unavailable",
    "store_refused",
)
ATTACHMENT_UNAVAILABLE_REASONS = ("expired", "purged")
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FORWARD_OUTCOMES = ("done", "retry", "permanent", "cancelled")
"""How one forward ended: taken by the target (`done`), `RetryLater` (`retry`), `Permanent` (`permanent`), or stopped
by its step's deadline or a shutdown (`cancelled`)."""
FORWARD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LoopCounter:
    """A counter for the event loop's thread: `inc()` is one addition.

    prometheus_client's counters and histograms take a lock on every call, which the webhook pays per push; these
    are read only when /metrics is scraped (on the same thread), through `LoopMetrics`.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram for the event loop's thread (see `LoopCounter`); `counts[i]` holds values <= `bounds[i]` only."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: the count of values <= each bound, then +Inf."""
        buckets, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), float(total)))
        return buckets


class Metrics:
    """The receiver's metrics. Later services register their own on `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received_by_channel = {channel: LoopCounter() for channel in CHANNELS}
        self.duplicates = LoopCounter()
        self.rejected_by_reason = {reason: LoopCounter() for reason in REJECT_REASONS}
        self.validations = LoopCounter()
        self.ack_seconds = LoopHistogram(ACK_BUCKETS)
        self.registry.register(LoopMetrics(self))
        self.inbox_events = Gauge(
            "altinn_receiver_inbox_events",
            "Events in the inbox by status (counted when scraped).",
            ["status"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            "altinn_receiver_ingest_inflight",
            "Pushes being read or committed right now.",
            registry=self.registry,
        )
        # Read from the store at each scrape: the /metrics endpoint awaits `ops.refresh(store)` first.
        self.ops = OpsMetrics(self.registry)
        # Counted by the `download_attachments` handler (through its Context); every reason shows from the start.
        self.attachments_unavailable = Counter(
            "altinn_receiver_attachments_unavailable",
            "Attachments not downloaded because Altinn no longer serves them, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in ATTACHMENT_UNAVAILABLE_REASONS:
            self.attachments_unavailable.labels(reason)
        # Set when scraped, from the inbox writer: one process's view (each has its own writer).
        self.store_writable = Gauge(
            "altinn_receiver_store_writable",
            "1 while the inbox writer commits; 0 from a failed commit until one succeeds (/readyz tries one), and for"
            " good once the store is damaged or was deleted while serving.",
            registry=self.registry,
        )
        Info("altinn_receiver_build", "The receiver's version.", registry=self.registry).info({"version": __version__})
        ProcessCollector(registry=self.registry)
        # Counted by the forward handlers (forward_http, forward_amqp, forward_nats), by the name each runs under.
        self.forwards = Counter(
            "altinn_receiver_forward",
            "Events handed to an agency's system by a forward handler, by handler and outcome.",
            ["handler", "outcome"],
            registry=self.registry,
        )
        self.forward_seconds = Histogram(
            "altinn_receiver_forward_seconds",
            "Time one forward took: until the target answered or the broker confirmed, or it failed.",
            ["handler"],
            buckets=FORWARD_BUCKETS,
            registry=self.registry,
        )

    def track_forwards(self, handler: str) -> None:
        """Show a forward handler's counts from its start: zero for every outcome."""
        for outcome in FORWARD_OUTCOMES:
            self.forwards.labels(handler, outcome)
        self.forward_seconds.labels(handler)

    def forwarded(self, handler: str, outcome: str, seconds: float) -> None:
        """One forward by `handler` (the name it runs under) that ended with `outcome` (FORWARD_OUTCOMES)."""
        self.forwards.labels(handler, outcome).inc()
        self.forward_seconds.labels(handler).observe(seconds)

    def set_inbox_counts(self, counts: dict[str, int]) -> None:
        for status in (*INBOX_STATUSES, *counts):
            self.inbox_events.labels(status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LoopMetrics(Collector):
    """Exports the webhook's loop counters and ack histogram in prometheus_client's exposition."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.created = time.time()

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        yield self._counter(
            "altinn_receiver_events_received",
            "Events newly added to the inbox, by the door they came through.",
            "channel",
            m.received_by_channel,
        )
        yield self._counter(
            "altinn_receiver_events_duplicate",
            "Events acknowledged whose id was already in the inbox (nothing added).",
            "",
            {"": m.duplicates},
        )
        yield self._counter(
            "altinn_receiver_events_rejected",
            "Pushes answered with an error, by reason.",
            "reason",
            m.rejected_by_reason,
        )
        yield self._counter(
            "altinn_receiver_validations", "Altinn subscription validation events recorded.", "", {"": m.validations}
        )
        ack = HistogramMetricFamily(
            "altinn_receiver_ack_seconds", "Time from receiving a push to acknowledging it after the commit."
        )
        ack.add_metric([], m.ack_seconds.cumulative(), m.ack_seconds.sum)
        ack.samples.append(Sample("altinn_receiver_ack_seconds_created", {}, self.created, None, None))
        yield ack

    def _counter(self, name: str, documentation: str, label: str, counters: dict[str, LoopCounter]) -> Metric:
        family = CounterMetricFamily(name, documentation, labels=[label] if label else [])
        for value, counter in counters.items():
            family.add_metric([value] if label else [], counter.value, created=self.created)
        return family
