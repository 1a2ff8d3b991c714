"""Prometheus metrics of one running receiver, in a registry of its own (tests run many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from receiver.ops_metrics import OpsMetrics
from receiver.store.inbox import CHANNELS
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
)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The receiver's metrics. Later services register their own on `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "altinn_receiver_events_received",
            "Events newly added to the inbox, by the door they came through.",
            ["channel"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "altinn_receiver_events_duplicate",
            "Events acknowledged whose id was already in the inbox (nothing added).",
            registry=self.registry,
        )
        self.rejected = Counter(
            "altinn_receiver_events_rejected",
            "Pushes answered with an error, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.validations = Counter(
            "altinn_receiver_validations",
            "Altinn subscription validation events recorded.",
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "altinn_receiver_ack_seconds",
            "Time from receiving a push to acknowledging it after the commit.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
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
        # Children bound once: label lookups are not free on the hot path.
        self.received_by_channel = {channel: self.received.labels(channel) for channel in CHANNELS}
        self.rejected_by_reason = {reason: self.rejected.labels(reason) for reason in REJECT_REASONS}
        # Read from the store at each scrape: the /metrics endpoint awaits `ops.refresh(store)` first.
        self.ops = OpsMetrics(self.registry)

    def set_inbox_counts(self, counts: dict[str, int]) -> None:
        for status in (*INBOX_STATUSES, *counts):
            self.inbox_events.labels(status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
