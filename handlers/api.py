"""The handler plugin API: what a handler is given (`Event`, `Context`) and how it says that something went wrong.

A handler is any object with a `name` and `async def handle(self, event, ctx) -> None`. Returning means done;
`raise RetryLater(reason, after=seconds)` means try again later, `raise Permanent(reason)` means never retry. Any
other exception counts as transient (retried with backoff), and so do Altinn's `TransientError`s.

A handler class may declare its options as a dataclass in `Options`: the receiver checks `[handlers.NAME]` against
it at startup with the validator that reads the whole config (`receiver.validation`: unknown names, wrong types,
`${NAME}` forms, `OptionError` from `__post_init__`) and passes the instance as `ctx.options`. Field types: str, int,
float, bool, `Duration` ("30s" or seconds), `Path` (relative to the config file), `Literal["a", "b"]`, `list[str]`,
`dict[str, str]`, or any of these `| None`; `setting(secret=True)` marks a field whose value is never shown (and
may come from `NAME_file`), `setting(minimum=...)` bounds one. See docs/handlers.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from receiver.validation import Duration, OptionError, setting

if TYPE_CHECKING:
    from receiver.altinn import AltinnClients
    from receiver.observability.metrics import Metrics
    from receiver.store.correspondences import CorrespondenceStore

__all__ = [
    "Context", "Duration", "Event", "Handler", "HandlerError", "OptionError", "Permanent", "RetryLater", "setting"
]  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One CloudEvent from the inbox, as Altinn sent it, plus where it came from and which run this is.

    `resourceinstance` is the correspondence id for `correspondence*` events, the attachment id for `attachment*`
    events and the notification order id for `notificationcreated`. `extensions` holds every other attribute
    (e.g. `alternativesubject`). `attempt` is 1 on the first run. `received_at` is when the receiver stored it.
    """

    id: str
    type: str
    source: str
    subject: str
    resource: str
    resourceinstance: str
    time: str
    data: Any
    extensions: Mapping[str, Any]
    channel: str
    attempt: int
    received_at: str = ""


@dataclass
class Context:
    """What a handler works with. `results` is shared down the pipeline (e.g. `results["correspondence"]`, set by
    `fetch_correspondence`); `options` is this handler's validated `[handlers.NAME]` section; `metrics` is the
    running receiver's Prometheus metrics (what `/metrics` shows)."""

    altinn: AltinnClients | None
    store: CorrespondenceStore
    results: dict[str, Any]
    log: logging.LoggerAdapter[logging.Logger]
    options: Any
    metrics: Metrics


@runtime_checkable
class Handler(Protocol):
    """A step of a pipeline. `Options` (a dataclass, optional) declares the options it takes; `uses_altinn` says it
    calls Altinn, so the receiver checks at startup that `[altinn]` and `[maskinporten]` are configured."""

    name: str

    async def handle(self, event: Event, ctx: Context) -> None: ...


class HandlerError(Exception):
    """Base of the two outcomes a handler may raise; `reason` is short and must not contain secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(HandlerError):
    """Transient trouble: run the event again later, no sooner than `after` seconds when given."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Permanent(HandlerError):
    """Retrying cannot help: the event is marked dead with this reason."""
