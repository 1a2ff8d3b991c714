"""`handlers.testing`, the plugin author's harness: a handler run as the dispatcher runs it (options checked as at
startup, `start`, `handle` within its deadline, `aclose`) over a real SQLite store in a folder, the built-in `store`
handler's rows written through `ctx.store`, the typed `ctx.correspondence` and `ctx.attachments` being the same
values as the `ctx.results` names plugins used before, a step that will not stop being left behind after its grace,
and the deprecated raw connection."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import pytest

from handlers import AttachmentFile, RetryLater
from handlers.store import Store
from handlers.testing import STORE_FILE, ConfigError, StepTimeout, handler_context, make_event, run_handler
from receiver.altinn import Correspondence
from receiver.config import StoreConfig
from receiver.store.migrations import LATEST
from receiver.worker.steps import CANCEL_GRACE
from tests.dispatch_plugins import Hang, Lifecycle, Pause, Recorder, Stubborn, recorded
from tests.store_backends import rows


def correspondence(correspondence_id: str, attachment_id: str) -> Correspondence:
    return Correspondence.from_json(
        {
            "correspondenceId": correspondence_id,
            "resourceId": "example",
            "sender": "urn:altinn:organization:identifier-no:991825827",
            "recipient": "urn:altinn:organization:identifier-no:312345678",
            "status": "Published",
            "content": {
                "messageTitle": "Nabovarsel",
                "attachments": [{"id": attachment_id, "fileName": "plan.pdf", "status": "Published"}],
            },
        }
    )


def test_the_store_handler_writes_its_rows_through_ctx_store(tmp_path: Path, store_config: StoreConfig) -> None:
    """On each backend: the handler's own statements for each dialect, through the plugin authors' harness."""
    event = make_event()
    attachment_id = str(uuid.uuid4())
    fetched = correspondence(event.resourceinstance, attachment_id)
    on_disk = AttachmentFile(path=tmp_path / "plan.pdf", size=3)

    async def twice() -> None:
        for _ in range(2):  # idempotent: the second run changes nothing
            await run_handler(Store(), event, folder=tmp_path, correspondence=fetched,
                              attachments={attachment_id: on_disk}, store_url=store_config.url)  # fmt: skip

    asyncio.run(twice())
    store = store_config if store_config.url else StoreConfig(path=tmp_path / STORE_FILE)
    [row] = rows(store, "SELECT correspondence_id, message_title, status FROM correspondences")
    assert tuple(row.values()) == (event.resourceinstance, "Nabovarsel", "Published")
    [row] = rows(store, "SELECT attachment_id, path, size FROM correspondence_attachments")
    assert tuple(row.values()) == (attachment_id, str(tmp_path / "plan.pdf"), 3)
    [row] = rows(store, "SELECT event_id, correspondence_id FROM correspondence_events")
    assert tuple(row.values()) == (event.id, event.resourceinstance)


def test_start_handle_and_aclose_run_once_each_with_options_checked_as_the_config_is(tmp_path: Path) -> None:
    ctx = asyncio.run(run_handler(Lifecycle(), options={"path": "calls.jsonl"}, folder=tmp_path))
    assert ctx.options.path == tmp_path / "calls.jsonl", "relative to the folder, as to the config file"
    assert [c["call"] for c in recorded(tmp_path / "calls.jsonl")] == ["start", "handle", "aclose"]


def test_an_option_of_the_wrong_type_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        asyncio.run(run_handler(Recorder(), options={"path": "ran.jsonl", "seconds": "soon"}, folder=tmp_path))
    assert caught.value.key == "handlers.recorder.seconds"


def test_what_the_handler_raises_comes_out_and_a_step_that_runs_over_times_out(tmp_path: Path) -> None:
    with pytest.raises(RetryLater) as paused:
        asyncio.run(run_handler(Pause(), options={"path": "p.jsonl"}, folder=tmp_path))
    assert paused.value.attempt is False
    with pytest.raises(StepTimeout, match="timed out after 100ms"):
        asyncio.run(run_handler(Hang(), options={"path": "h.jsonl"}, folder=tmp_path, step_timeout=0.1))
    assert [line["run"] for line in recorded(tmp_path / "h.jsonl")] == ["cancelled"]


def test_typed_results_and_the_names_plugins_used_before_are_the_same_values(tmp_path: Path) -> None:
    fetched = correspondence(str(uuid.uuid4()), str(uuid.uuid4()))

    async def check() -> None:
        async with handler_context(folder=tmp_path) as ctx:
            assert (ctx.correspondence, ctx.attachments) == (None, None)
            ctx.results["correspondence"] = fetched  # as a plugin written before `ctx.correspondence`
            assert ctx.correspondence is fetched
            ctx.attachments = {
                "a": AttachmentFile(path=tmp_path / "a.pdf", size=1),
                "b": AttachmentFile(unavailable="Expired"),
            }
            assert ctx.results["downloads"] == ctx.attachments
            assert ctx.results["attachments"] == [tmp_path / "a.pdf"]
            assert await ctx.store.fetch("SELECT :n AS n", {"n": 1}) == [{"n": 1}]

    asyncio.run(check())


def test_a_step_that_ignores_its_cancellation_is_left_behind_after_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    with pytest.raises(StepTimeout):
        asyncio.run(run_handler(Stubborn(), step_timeout=0.1))
    assert time.monotonic() - started < 0.1 + CANCEL_GRACE + 1.0
    assert any(r.levelno == logging.ERROR and "did not stop when cancelled" in r.getMessage() for r in caplog.records)


def test_the_raw_connection_is_still_there_but_deprecated(tmp_path: Path) -> None:
    async def check() -> None:
        async with handler_context(folder=tmp_path) as ctx:
            with pytest.warns(DeprecationWarning, match="ctx.store.conn"):
                conn = getattr(ctx.store, "conn")  # noqa: B009 (not part of handlers.Store)
            assert [tuple(row) for row in await conn.execute_fetchall("SELECT 1")] == [(1,)]

    asyncio.run(check())


def test_the_store_is_created_with_the_schema_serve_migrates_to_and_options_read_the_environment(
    tmp_path: Path,
) -> None:
    async def check() -> None:
        async with handler_context(folder=tmp_path) as ctx:
            [row] = await ctx.store.fetch("SELECT MAX(version) AS version FROM schema_migrations")
            assert row["version"] == LATEST

    asyncio.run(check())
    asyncio.run(check())  # an existing store in the folder is opened as it is
    ctx = asyncio.run(run_handler(Lifecycle(), options={"path": "${CALLS}"}, folder=tmp_path,
                                  environ={"CALLS": "calls.jsonl"}))  # fmt: skip
    assert ctx.options.path == tmp_path / "calls.jsonl"
