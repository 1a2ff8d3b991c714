"""The event filters the console's pages take as query parameters: `status`, `type` (a glob), `resourceinstance`,
`since`, `until` (a time, or a duration before now such as `24h`), `q` (an event id), and on /dead `reason` (a
group of one last error, named by a digest of it: an error's text can be long, and has no place in a URL); read
into the store's `EventFilter`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from starlette.exceptions import HTTPException

from receiver.durations import parse_duration
from receiver.store.inbox import EventFilter
from receiver.store.schema import INBOX_STATUSES
from receiver.timeutil import iso_after, parse_iso, to_iso


@dataclass(frozen=True)
class Filters:
    """The filters as given (each "" when not): what the form shows and the links carry."""

    status: str = ""
    type: str = ""
    resourceinstance: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    reason: str = ""

    @classmethod
    def read(cls, params: Mapping[str, object]) -> Filters:
        """The filters in query parameters or a form (anything but text is ignored)."""
        given = {name: params.get(name) for name in cls.__dataclass_fields__}
        return cls(**{name: value.strip() for name, value in given.items() if isinstance(value, str)})

    def selection(self) -> EventFilter:
        """The store's filter (`reason` aside: `reason_key`); 400 saying what to write when a value cannot be
        read."""
        if self.status and self.status not in INBOX_STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(INBOX_STATUSES)}; got {self.status!r}")
        return EventFilter(
            status=self.status or None,
            type_glob=self.type or None,
            resourceinstance=self.resourceinstance or None,
            since=moment("since", self.since),
            until=moment("until", self.until),
            event_id=self.q or None,
        )

    def query(self, **extra: str | int) -> str:
        """The filters that are set (and `extra`) as a query string, for links that keep them."""
        given = {name: value for name, value in asdict(self).items() if value}
        return urlencode({**given, **{name: value for name, value in extra.items() if value != ""}})

    @property
    def any(self) -> bool:
        return any(asdict(self).values())


def moment(name: str, text: str) -> str | None:
    """`since`/`until` as the store's timestamp: an ISO-8601 time (UTC unless it says otherwise), or a duration
    before now ("24h", "90m", seconds)."""
    if not text:
        return None
    try:
        return iso_after(-parse_duration(text))
    except ValueError:
        pass
    try:
        return to_iso(parse_iso(text))
    except ValueError:
        raise HTTPException(
            400, f"{name} must be a time such as 2026-12-01T08:00Z or a duration before now such as 24h; got {text!r}"
        ) from None


def reason_key(error: str) -> str:
    """The `reason` that names the group of events whose last error is `error`."""
    return hashlib.sha256(error.encode("utf-8", "surrogateescape")).hexdigest()[:16]
