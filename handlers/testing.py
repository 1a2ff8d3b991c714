"""Testing a handler as the dispatcher runs it, without a receiver: for a plugin's own tests.

    import asyncio
    from handlers.testing import make_event, run_handler

    def test_writes_one_line(tmp_path):
        event = make_event()
        asyncio.run(run_handler(AuditFile(), event, options={"path": "audit.jsonl"}, folder=tmp_path))
        assert (tmp_path / "audit.jsonl").read_text().count("\\n") == 1

`run_handler` checks the options as `[handlers.NAME]` is checked at startup (a `ConfigError` naming the key), runs
`start`, `handle` within `step_timeout` and `aclose` once each, over a real store (an SQLite file, `STORE_FILE` in
`folder`, or in a temporary folder; or the PostgreSQL store at `store_url`, for a handler's PostgreSQL SQL), and
returns the `Context` the handler saw. What the handler raises comes out
as it is (`RetryLater`, `Permanent`, ...); a step that runs over raises `StepTimeout`, a `RetryLater`.
`handler_context` gives such a `Context` for a test that calls a handler (or anything else taking one) itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from handlers.api import AttachmentFile, Context, Event, Handler, Store
from receiver.altinn import AltinnClients, Correspondence
from receiver.config import ConfigError, DispatchConfig, StoreConfig
from receiver.observability.metrics import Metrics
from receiver.store.backends import open_backend
from receiver.store.handler_store import HandlerStore
from receiver.validation import Source
from receiver.worker.pipelines import create_handler, handler_options
from receiver.worker.steps import StepTimeout, run_step, step_context, within

__all__ = ["STORE_FILE", "ConfigError", "StepTimeout", "handler_context", "make_event", "run_handler"]

STORE_FILE = "receiver.db"
"""The store's file name in `folder`: open it with sqlite3 to see what a handler wrote."""

PUBLISHED = "no.altinn.correspondence.correspondencepublished"


def make_event(**fields: Any) -> Event:
    """An `Event` as the dispatcher gives one: a `correspondencepublished` about a new correspondence id (its
    `resourceinstance`), pushed, on its first attempt; `fields` replace any of these."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": PUBLISHED,
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "subject": "urn:altinn:organization:identifier-no:312345678",
        "resource": "urn:altinn:resource:example",
        "resourceinstance": str(uuid.uuid4()),
        "time": "2026-01-05T10:00:00.000000Z",
        "data": None,
        "extensions": {},
        "channel": "push",
        "attempt": 1,
        "received_at": "2026-01-05T10:00:01.000000Z",
    }
    unknown = sorted(set(fields) - {field.name for field in dataclasses.fields(Event)})
    if unknown:
        raise TypeError(f"Event has no field {unknown[0]!r}")
    return Event(**{**values, **fields})


@asynccontextmanager
async def handler_context(
    options: Any = None,
    *,
    folder: Path | None = None,
    name: str = "handler",
    event: Event | None = None,
    correspondence: Correspondence | None = None,
    attachments: Mapping[str, AttachmentFile] | None = None,
    results: Mapping[str, Any] | None = None,
    altinn: AltinnClients | None = None,
    store_url: str = "",
) -> AsyncIterator[Context[Any]]:
    """A `Context` over a real store (`STORE_FILE` in `folder`, else in a temporary folder removed afterwards; or the
    PostgreSQL store at `store_url`, a libpq URL; created, or brought to this release's schema, as `serve` does at
    start), open for the `async with` block:
    `options` as given (an `Options` instance, or None), what earlier steps found (`correspondence`, `attachments`,
    other `results`), the log bound to `name` and `event` as the dispatcher binds them, fresh metrics, and
    `[dispatch] backoff_cap` at its default."""
    async with AsyncExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="handler-test-")))
        backend = open_backend(StoreConfig(path=folder / STORE_FILE, url=store_url))
        await asyncio.to_thread(backend.migrate)
        database = await backend.connect()
        stack.push_async_callback(database.close)
        yield _context(name, options, event, HandlerStore(database), altinn, Metrics(),
                       correspondence=correspondence, attachments=attachments, results=results)  # fmt: skip


def _context(
    name: str,
    options: Any,
    event: Event | None,
    store: Store,
    altinn: AltinnClients | None,
    metrics: Metrics,
    *,
    correspondence: Correspondence | None,
    attachments: Mapping[str, AttachmentFile] | None,
    results: Mapping[str, Any] | None,
) -> Context[Any]:
    ctx = step_context(name, options, event=event, store=store, results=dict(results or {}), altinn=altinn,
                       metrics=metrics, backoff_cap=DispatchConfig().backoff_cap)  # fmt: skip
    if correspondence is not None:
        ctx.correspondence = correspondence
    if attachments is not None:
        ctx.attachments = attachments
    return ctx


async def run_handler(
    handler: Any,
    event: Event | None = None,
    *,
    options: Mapping[str, Any] | Any = None,
    folder: Path | None = None,
    name: str | None = None,
    correspondence: Correspondence | None = None,
    attachments: Mapping[str, AttachmentFile] | None = None,
    results: Mapping[str, Any] | None = None,
    altinn: AltinnClients | None = None,
    step_timeout: float = 300.0,
    environ: Mapping[str, str] | None = None,
    store_url: str = "",
) -> Context[Any]:
    """Run `handler` (an instance) on `event` (default: `make_event()`) as the dispatcher would, and return the
    `Context` it saw (its store closed by then).

    `options`: a mapping, checked like the TOML section `[handlers.NAME]` (relative paths against `folder`, or the
    current folder; `${NAME}` forms and `*_file` secrets read from `environ`, default `os.environ`, and `folder`),
    or an instance of the handler's `Options`, used as it is; None is an empty section. `store_url`: run it over
    that PostgreSQL store instead of an SQLite file. `name` is
    the section's NAME (default: the handler's `name`). `correspondence`, `attachments` and `results` stand for what
    earlier steps found. `start` (with a context of its own, without an event), `handle` (within `step_timeout`
    seconds, as `[handlers.NAME] step_timeout`) and `aclose` run once each; `aclose` also when `handle` raises.
    """
    checked: Handler = create_handler(lambda: handler, type(handler).__name__, "handler")
    step = name or checked.name
    if options is None or isinstance(options, Mapping):
        source = Source(dict(os.environ if environ is None else environ), folder if folder is not None else Path("."))
        options = handler_options(checked, dict(options or {}), f"handlers.{step}", step, source)
    event = event if event is not None else make_event()
    async with handler_context(options, folder=folder, name=step, altinn=altinn, store_url=store_url) as started:
        await within(checked.start(started), step_timeout, f"{step}:start")
        try:
            ctx = _context(step, options, event, started.store, altinn, started.metrics,
                           correspondence=correspondence, attachments=attachments, results=results)  # fmt: skip
            await run_step(checked, event, ctx, step_timeout)
        finally:
            await checked.aclose()
    return ctx
