"""What the inbox holds, whichever backend: an event as it arrived (`NewEvent`) and as stored (`InboxRecord`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

CHANNELS = ("push", "catchup")
PRUNED_RAW = '{"pruned":true}'
"""`raw` of an event whose payload retention has pruned (receiver/store/retention.py); its row and id stay. Valid
JSON, so that a release that does not know about retention still reads the row."""


@dataclass(frozen=True)
class NewEvent:
    """An event that passed validation at a door (push or catch-up), ready to be stored as sent."""

    id: str
    type: str
    source: str
    subject: str
    resource: str
    resourceinstance: str
    time: str
    raw: str


@dataclass(frozen=True)
class RefusedEvent(NewEvent):
    """An event from the pull API that the door refuses, kept as a `dead` row so that it is seen and catch-up moves
    past it: its columns and `raw` hold only storable text (receiver/sync/catchup.py builds it), `reason` says why
    it was refused."""

    reason: str


@dataclass(frozen=True)
class InboxRecord(NewEvent):
    """A stored event: what arrived, plus where it is in its life (status, attempts, lease)."""

    seq: int
    received_at: str
    channel: str
    status: str
    attempts: int
    last_error: str
    next_attempt_at: str
    lease_until: str
    lease_owner: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> InboxRecord:
        return cls(**row)

    @property
    def event(self) -> dict[str, Any]:
        """The CloudEvent as it was received (`PRUNED_RAW` once pruned)."""
        value = json.loads(self.raw)
        assert isinstance(value, dict)
        return value

    @property
    def pruned(self) -> bool:
        """Retention has dropped the event's payload: it can no longer run."""
        return self.raw == PRUNED_RAW

    def to_json(self, *, with_event: bool = False) -> dict[str, Any]:
        """The public JSON shape of `events list/show --json` (the raw event only when asked: null once pruned)."""
        data = asdict(self)
        raw = data.pop("raw")
        for internal in ("seq", "lease_owner"):
            data.pop(internal)
        data["pruned"] = self.pruned
        if with_event:
            data["event"] = None if self.pruned else json.loads(raw)
        return data
