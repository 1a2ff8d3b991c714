"""The handler plugin API: what a handler is (`Handler`), what it is given (`Event`, `Context`, `Store`) and how it
says that something went wrong (`RetryLater`, `Permanent`). See docs/handlers.md.

A handler is an object with a `name` and `async def handle(self, event, ctx) -> None`, and the rest of `Handler`:
`Options`, `uses_altinn`, `async start(ctx)` and `async aclose()`. Subclass `BaseHandler` to get the defaults of
those (no options, no Altinn, nothing to start or close); an object that lacks them still loads, with the same
defaults. Returning means done; `raise RetryLater(reason, after=seconds)` means try again later (`attempt=False`: a
pause that does not count as an attempt), `raise Permanent(reason)` means never retry. Any other exception counts
as transient (retried with backoff), and so do Altinn's `TransientError`s.

`Options` is a dataclass: the receiver checks `[handlers.NAME]` against it at startup with the validator that reads
the whole config (`receiver.validation`: unknown names, wrong types, `${NAME}` forms, `OptionError` from
`__post_init__`) and passes the instance as `ctx.options`. Field types: str, int, float, bool, `Duration` ("30s" or
seconds), `Path` (relative to the config file), `Literal["a", "b"]`, `list[str]`, `dict[str, str]`, or any of these
`| None`; `setting(secret=True)` marks a field whose value is never shown (and may come from `NAME_file`),
`setting(minimum=...)` bounds one. `use` and `step_timeout` are the receiver's keys and never reach it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from receiver.validation import Duration, OptionError, setting

if TYPE_CHECKING:
    from receiver.altinn import AltinnClients, Correspondence
    from receiver.observability.metrics import Metrics

__all__ = [
    "AttachmentFile", "BaseHandler", "Context", "Duration", "Event", "Handler", "HandlerError", "OptionError",
    "Permanent", "RetryLater", "Store", "setting",
]  # fmt: skip

CORRESPONDENCE_EVENT = "no.altinn.correspondence.correspondence"
"""The type prefix of the events whose `resourceinstance` is a correspondence id (events contract §3.4)."""

OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class Event:
    """One CloudEvent from the inbox, as Altinn sent it, plus where it came from and which run this is.

    `resourceinstance` is the correspondence id for `correspondence*` events, the attachment id for `attachment*`
    events and the notification order id for `notificationcreated`. `extensions` holds every other attribute
    (e.g. `alternativesubject`). `attempt` is 1 on the first run (a `RetryLater(attempt=False)` pause does not
    count). `received_at` is when the receiver stored it.
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

    @property
    def is_correspondence_event(self) -> bool:
        """Whether `resourceinstance` names a correspondence (a `no.altinn.correspondence.correspondence*` event);
        for attachment and notification events it is an attachment or notification-order id."""
        return self.type.startswith(CORRESPONDENCE_EVENT)


@dataclass(frozen=True)
class AttachmentFile:
    """What `download_attachments` did with one attachment (`ctx.attachments`, by attachment id): the file on disk
    (`path`, `size` in bytes), or else `unavailable`, the status (`Expired`, `Purged`) for which Altinn would not
    serve it."""

    path: Path | None = None
    size: int | None = None
    unavailable: str | None = None


@runtime_checkable
class Store(Protocol):
    """The receiver's database as a handler sees it (`ctx.store`): one parameterised statement per call.

    Each call is one statement, atomic on its own and done when it returns; there are no transactions across
    calls, because the connection is shared by every pipeline running at once (and a store on a server would hand
    out pooled connections). Parameters are named (`:name`, given as a mapping), the one style every backend's
    driver can be given. Write the SQL for `dialect` ("sqlite" or "postgresql"); rows come back as plain dicts. A
    handler's own tables get names of its own (prefixed with the handler's name), are created in `start` with
    `CREATE TABLE IF NOT EXISTS`, and every write is idempotent: an event can run again. The dispatcher hands out
    one `Store` per run of a pipeline, shared by its steps, fenced by the run's claim: once another worker has
    taken the event over (this run's lease ran out), every call raises `LeaseLost` and changes nothing.
    """

    dialect: str

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement that changes rows (without RETURNING); how many it changed."""
        ...

    async def execute_many(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run one statement once per parameter mapping in `rows` (each its own statement)."""
        ...

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one query, or one write with RETURNING, to its end; its rows as {column: value}."""
        ...


@dataclass
class Context(Generic[OptionsT]):
    """What a handler works with: `options`, this handler's validated `[handlers.NAME]` section (an `Options`
    instance; None for a handler without options); `store`, the receiver's database (`Store`); `altinn`, the
    Altinn clients (when a handler of the receiver has `uses_altinn`); `log`, a logger bound to the event and the
    handler (`extra=` fields add to it); `metrics`, the running receiver's Prometheus metrics (what `/metrics`
    shows); `name`, the name this handler runs under (its `[handlers.NAME]`, the `handler` of its log lines);
    `backoff_cap`, the longest a retried event waits for its next run (`[dispatch] backoff_cap`, seconds; longer only
    when a handler asks for it with `RetryLater(after=...)`); and what earlier steps of the pipeline found:
    `correspondence` (fetch_correspondence), `attachments` (download_attachments), and `results`, a dict shared down
    the pipeline for anything else.

    `results["correspondence"]`, `results["downloads"]` and `results["attachments"]` (the paths on disk) are the
    same values under the names plugins used before `correspondence` and `attachments` were typed: setting one
    sets the other.
    """

    altinn: AltinnClients | None
    store: Store
    results: dict[str, Any]
    log: logging.LoggerAdapter[logging.Logger]
    options: OptionsT
    metrics: Metrics
    name: str
    backoff_cap: float

    @property
    def correspondence(self) -> Correspondence | None:
        """The correspondence `fetch_correspondence` read (None when it did not run, or found none to read)."""
        fetched: Correspondence | None = self.results.get("correspondence")
        return fetched

    @correspondence.setter
    def correspondence(self, value: Correspondence | None) -> None:
        self.results["correspondence"] = value

    @property
    def attachments(self) -> Mapping[str, AttachmentFile] | None:
        """What `download_attachments` did with each attachment of `correspondence`, by attachment id (None when
        it did not run)."""
        downloads: Mapping[str, AttachmentFile] | None = self.results.get("downloads")
        return downloads

    @attachments.setter
    def attachments(self, value: Mapping[str, AttachmentFile]) -> None:
        self.results["downloads"] = dict(value)
        self.results["attachments"] = [file.path for file in value.values() if file.path is not None]


@runtime_checkable
class Handler(Protocol):
    """A step of a pipeline, created once at startup with no arguments.

    `name`: the handler's name (the config's, for an installed plugin: its entry point's). `Options`: the dataclass
    `[handlers.NAME]` is checked against at startup, or None (takes no options). `uses_altinn`: it calls Altinn
    through `ctx.altinn`, so startup requires `[altinn]` and `[maskinporten]`. `start(ctx)`: once, when the
    dispatcher starts, before any event (prepare tables, open clients; `ctx` has no event, and nothing fetched);
    if it raises, the dispatcher does not start. `handle(event, ctx)`: once per run of an event, within its
    `step_timeout`. `aclose()`: once, when the receiver stops, after the last event (close what `start` opened).
    """

    # Read-only members: a class attribute, an instance attribute or a nested `class Options` all satisfy them.
    @property
    def name(self) -> str: ...

    @property
    def Options(self) -> type[Any] | None: ...

    @property
    def uses_altinn(self) -> bool: ...

    async def start(self, ctx: Context[Any]) -> None: ...

    async def handle(self, event: Event, ctx: Context[Any]) -> None: ...

    async def aclose(self) -> None: ...


class BaseHandler:
    """`Handler`'s defaults: no options, no Altinn, nothing to start or close. Subclass it, set `name` and write
    `handle`; declare `Options`, set `uses_altinn` or override `start`/`aclose` when the handler needs them."""

    name: str
    Options: ClassVar[type[Any] | None] = None
    uses_altinn: ClassVar[bool] = False

    async def start(self, ctx: Context[Any]) -> None:
        """Nothing to prepare."""

    async def handle(self, event: Event, ctx: Context[Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define `async def handle(self, event, ctx)`")

    async def aclose(self) -> None:
        """Nothing to close."""


class HandlerError(Exception):
    """Base of the two outcomes a handler may raise; `reason` is short and must not contain secrets. `http_status`:
    the HTTP status of the failed call behind it, when there was one (the event's attempt history shows it); when
    not given, that of an Altinn error it was raised from (`raise ... from exc`)."""

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class RetryLater(HandlerError):
    """Transient trouble: run the event again later, no sooner than `after` seconds when given.

    `attempt=False` is a pause, not a failure (the target's maintenance window): the run does not count towards
    `[dispatch] max_attempts` and the event's next run has the same `attempt` number; `max_age` still ends it.
    """

    def __init__(
        self, reason: str, after: float | None = None, *, attempt: bool = True, http_status: int | None = None
    ) -> None:
        super().__init__(reason, http_status=http_status)
        self.after = after
        self.attempt = attempt


class Permanent(HandlerError):
    """Retrying cannot help: the event is marked dead with this reason."""
