"""CloudEvents the way Altinn Events writes them (events contract §3.1): structured JSON, compact, `specversion`
first, absent attributes omitted, `time` in UTC with 7 fractional digits (.NET ticks)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from altinn_sim.resources import RESOURCE_PREFIX
from receiver.timeutil import parse_iso

PUSH_CONTENT_TYPE = "application/json; charset=utf-8"
PULL_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def event_time(epoch_ns: int | None = None) -> str:
    """`2024-04-19T07:22:19.4380391Z`: what `DateTimeOffset.UtcNow` serialises to."""
    nanos = time.time_ns() if epoch_ns is None else epoch_ns
    seconds, rest = divmod(nanos, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 100:07d}Z"


def normalise(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the SDK formatter would emit it: specversion first, null attributes dropped."""
    ordered = {"specversion": event.get("specversion", "1.0")}
    ordered.update((k, v) for k, v in event.items() if k != "specversion" and v is not None)
    return ordered


def serialise(event: dict[str, Any]) -> bytes:
    return json.dumps(normalise(event), separators=(",", ":")).encode()


def problems(event: Any) -> str | None:
    """Why Altinn Events would refuse this event from a producer, or None if it is acceptable."""
    if not isinstance(event, dict):
        return "The body must be one CloudEvent as a JSON object."
    if event.get("specversion") != "1.0":
        return "specversion must be 1.0."
    for attribute in ("id", "type", "source"):
        if not isinstance(event.get(attribute), str) or not event[attribute]:
            return f"Missing or invalid {attribute}."
    if not urlsplit(event["source"]).scheme:
        return "source must be an absolute URI."
    resource = event.get("resource")
    if not isinstance(resource, str) or not resource.startswith(RESOURCE_PREFIX):
        return f"Missing or invalid resource: it must start with {RESOURCE_PREFIX}."
    if "time" in event:
        try:
            parse_iso(str(event["time"]))
        except ValueError:
            return "time must be an RFC 3339 timestamp."
    return None


def validation_event(events_api: str, subscription_id: int) -> dict[str, Any]:
    """The handshake POSTed to a new subscription's endpoint (events contract §2)."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"{events_api}subscriptions/{subscription_id}",
        "type": "platform.events.validatesubscription",
    }
