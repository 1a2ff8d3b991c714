"""The plugin contract as the dispatcher keeps it, through a receiver running its dispatcher over a real store: a
step that runs over its `step_timeout` is cancelled and its event retried (also when it swallows the
cancellation); `RetryLater(attempt=False)` pauses without using up attempts; each handler's `start` and `aclose`
run once, and a failing `start` keeps the dispatcher from starting; `step_timeout` is the receiver's key, never an
option; and an option of the wrong type stops `serve` with exit status 2 naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers import Handler
from receiver.config import Config, ConfigError, load_config
from receiver.worker.pipelines import load_pipelines
from tests.dispatch_plugins import Recorder, recorded
from tests.dispatch_support import FAST_RETRIES, dispatching_app, wait_settled
from tests.ingest_support import config_text, inbox_rows, new_event, push, run_cli, webhook
from tests.pipeline_support import CORRESPONDENCE_EVENTS, pipelines_toml
from tests.support import wait_until, write_config

PLUGINS = "tests.dispatch_plugins"


def receiver_config(tmp_path: Path, handlers: Mapping[str, Mapping[str, Any]], **dispatch: Any) -> Config:
    """A receiver whose one pipeline runs `handlers` (by dotted path, in order) on every correspondence event."""
    toml = pipelines_toml(
        ([CORRESPONDENCE_EVENTS], list(handlers)),
        dispatch={**FAST_RETRIES, **dispatch},
        handlers={name: {"use": f"{PLUGINS}:{class_name(name)}", **options} for name, options in handlers.items()},
    )
    return load_config(write_config(tmp_path / "receiver.toml", config_text(tmp_path / "r.db") + toml))


def class_name(handler: str) -> str:
    return "".join(part.capitalize() for part in handler.split("_"))


def run_events(config: Config, count: int = 1) -> dict[str, str]:
    """Push `count` events to a receiver running only its dispatcher; their final statuses, by id."""
    events = [new_event() for _ in range(count)]
    with dispatching_app(config) as server, httpx.Client() as client:
        for event in events:
            assert push(client, webhook(server.url), event).status_code == 200
        return wait_settled(config.store.path, count)


@pytest.mark.parametrize("swallow", [False, True], ids=["cancelled", "swallows-its-cancellation"])
def test_a_hung_step_is_cancelled_at_its_deadline_and_the_event_retried(tmp_path: Path, swallow: bool) -> None:
    log = tmp_path / "hang.jsonl"
    config = receiver_config(tmp_path, {"hang": {"path": str(log), "swallow": swallow, "step_timeout": "200ms"}})
    assert set(run_events(config).values()) == {"done"}
    assert [(line["run"], line["attempt"]) for line in recorded(log)] == [("cancelled", 1), ("done", 2)]
    [row] = inbox_rows(config.store.path)
    assert row["attempts"] == 2


def test_a_timed_out_step_says_so_in_last_error(tmp_path: Path) -> None:
    log = tmp_path / "hang.jsonl"
    config = receiver_config(tmp_path, {"hang": {"path": str(log)}}, step_timeout="150ms", max_attempts=1)
    assert set(run_events(config).values()) == {"dead"}
    [row] = inbox_rows(config.store.path)
    assert row["last_error"] == "gave up after 1 attempts; last: hang: timed out after 150ms"


def test_pausing_twice_then_working_ends_done_with_one_attempt_counted(tmp_path: Path) -> None:
    log = tmp_path / "pause.jsonl"
    config = receiver_config(tmp_path, {"pause": {"path": str(log), "times": 2}}, max_attempts=1)
    assert set(run_events(config).values()) == {"done"}
    assert [line["attempt"] for line in recorded(log)] == [1, 1, 1]
    [row] = inbox_rows(config.store.path)
    assert (row["attempts"], row["last_error"]) == (1, "")


def test_start_and_aclose_run_once_each_around_the_events(tmp_path: Path) -> None:
    log = tmp_path / "lifecycle.jsonl"
    config = receiver_config(tmp_path, {"lifecycle": {"path": str(log)}})
    assert set(run_events(config, 3).values()) == {"done"}
    calls = recorded(log)
    assert calls[0] == {"call": "start", "dialect": "sqlite", "correspondence": None}
    assert [c["call"] for c in calls[1:]] == ["handle"] * 3 + ["aclose"]


def test_a_failing_start_keeps_the_dispatcher_from_starting_and_closes_what_started(tmp_path: Path) -> None:
    log = tmp_path / "lifecycle.jsonl"
    config = receiver_config(tmp_path, {"lifecycle": {"path": str(log)}, "failing_start": {}})
    with dispatching_app(config) as server:
        status = wait_until(
            lambda: httpx.get(f"{server.url}/readyz", timeout=5).json()["services"]["dispatcher"].get("start_error"),
            message="the dispatcher's start error",
        )
    assert status == (
        "HandlerStartError: handler 'failing_start' did not start: RuntimeError: the case system is not reachable"
    )
    assert [c["call"] for c in recorded(log)] == ["start", "aclose"]


def test_step_timeout_is_the_receivers_key_and_never_reaches_the_options(tmp_path: Path) -> None:
    log = tmp_path / "hang.jsonl"
    config = receiver_config(tmp_path, {"hang": {"path": str(log), "step_timeout": "90s"}, "pause": {"path": "p"}},
                             step_timeout="2m")  # fmt: skip
    steps = load_pipelines(config).steps
    assert (steps["hang"].timeout, steps["pause"].timeout) == (90.0, 120.0)
    assert steps["hang"].options == steps["hang"].handler.Options(path=log)  # type: ignore[misc]


def test_a_plugin_written_before_the_contract_grew_loads_with_its_defaults(tmp_path: Path) -> None:
    handler = load_pipelines(receiver_config(tmp_path, {"recorder": {"path": "ran.jsonl"}})).steps["recorder"].handler
    assert isinstance(handler, Handler)
    assert (handler.name, handler.Options, handler.uses_altinn) == ("recorder", Recorder.Options, False)


@pytest.mark.parametrize(
    ("name", "words"),
    [("plain_options", "its `Options` must be a dataclass"), ("sync_start", "`start` must be `async def start(...)`")],
)
def test_a_handler_that_breaks_the_contract_is_refused_naming_it(tmp_path: Path, name: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipelines(receiver_config(tmp_path, {name: {}}))
    assert caught.value.key == f"handlers.{name}.use" and words in caught.value.problem


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        ('path = "ran.jsonl"\nseconds = "soon"', "handlers.recorder.seconds", 'a duration such as "30s"'),
        ('path = "ran.jsonl"\nseconds = true', "handlers.recorder.seconds", "a duration"),
        ('path = "ran.jsonl"\nstep_timeout = "0s"', "handlers.recorder.step_timeout", "longer than zero"),
        ("path = 7", "handlers.recorder.path", "must be a path, got a whole number 7"),
    ],
)
def test_an_option_of_the_wrong_type_stops_serve_with_exit_2_naming_the_key(
    tmp_path: Path, section: str, key: str, words: str
) -> None:
    text = config_text(tmp_path / "r.db") + (
        f'\n[[pipelines]]\ntypes = ["*"]\nhandlers = ["recorder"]\n\n'
        f'[handlers.recorder]\nuse = "{PLUGINS}:Recorder"\n{section}\n'
    )
    result = run_cli("serve", "--config", str(write_config(tmp_path / "receiver.toml", text)))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"config error: {key}: ") and words in result.stderr, result.stderr
