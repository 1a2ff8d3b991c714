"""The attempt history (`attempts`), on each backend: one row per run of an event's pipeline, written with its
outcome by the dispatcher: retries with the forward target's HTTP status, a pause, a run given back at shutdown;
nothing for a claim that was taken over; `events show` prints it and `--json` adds it as `history`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from altinn_sim.testing import Webhook
from receiver.cli.main import main
from receiver.config import Config, StoreConfig, load_config
from receiver.store import queue
from receiver.store.attempts import RELEASED, Attempt, NewAttempt, event_attempts
from receiver.store.inbox import insert_event
from receiver.store.interface import Database
from receiver.timeutil import iso_after, now_iso, parse_iso
from receiver.worker.dispatcher import GIVEN_BACK
from tests.dispatch_support import FAST_RETRIES, dispatching_app, statuses, wait_settled
from tests.ingest_support import PUBLISHED, config_text, new_event, push, webhook
from tests.pipeline_support import pipelines_toml
from tests.store_backends import event, run_on
from tests.support import wait_until, write_config

HISTORY_FIELDS = ["seq", "event_id", "attempt", "started_at", "finished_at", "step", "outcome", "error", "http_status"]


def receiver_config(tmp_path: Path, store: StoreConfig, pipelines: str, **receiver: Any) -> Config:
    return load_config(write_config(tmp_path / "receiver.toml", config_text(store, **receiver) + pipelines))


def history(store: StoreConfig, event_id: str) -> list[Attempt]:
    return run_on(store, lambda db: event_attempts(db, event_id), migrate=False)


def summary(attempts: list[Attempt]) -> list[tuple[int, str, str, int | None]]:
    return [(a.attempt, a.step, a.outcome, a.http_status) for a in attempts]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout + result.stderr


def test_two_5xx_from_the_forward_target_then_2xx_are_three_attempts_and_events_show_prints_them(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    sent = new_event()
    with Webhook(answers=[503, 502]) as target:
        pipelines = pipelines_toml(
            ([PUBLISHED], ["log", "to_archive"]),
            dispatch=FAST_RETRIES,
            handlers={"to_archive": {"use": "forward_http", "url": f"{target.url}/archive"}},
        )
        config = receiver_config(tmp_path, store_config, pipelines)
        with dispatching_app(config) as server, httpx.Client(timeout=10) as client:
            before = now_iso()
            assert push(client, webhook(server.url), sent).status_code == 200
            assert wait_settled(store_config, 1) == {sent["id"]: "done"}
    attempts = history(store_config, sent["id"])
    assert summary(attempts) == [
        (1, "to_archive", "retrying", 503),
        (2, "to_archive", "retrying", 502),
        (3, "to_archive", "done", None),
    ]
    where = f"{target.url}/archive"
    assert [a.error for a in attempts] == [
        f"to_archive: forwarding to {where}: HTTP 503",
        f"to_archive: forwarding to {where}: HTTP 502",
        "",
    ]
    assert [a.event_id for a in attempts] == [sent["id"]] * 3
    assert attempts[0].seq < attempts[1].seq < attempts[2].seq
    for earlier, later in itertools.pairwise(attempts):
        assert earlier.finished_at <= later.started_at
    for attempt in attempts:
        assert before <= attempt.started_at <= attempt.finished_at <= now_iso()
        assert parse_iso(attempt.started_at).tzinfo is not None and attempt.finished_at.endswith("Z")

    code, shown = cli("events", "show", "--config", str(tmp_path / "receiver.toml"), sent["id"], "--json")
    assert code == 0, shown
    data = json.loads(shown)
    assert data["attempts"] == 3, "`attempts` stays the count"
    assert [list(entry) for entry in data["history"]] == [HISTORY_FIELDS] * 3
    assert data["history"] == [attempt.to_json() for attempt in attempts]
    assert [entry["http_status"] for entry in data["history"]] == [503, 502, None]

    code, shown = cli("events", "show", "--config", str(tmp_path / "receiver.toml"), sent["id"])
    assert code == 0, shown
    lines = shown.splitlines()
    header = lines.index("history:") + 1
    assert lines[header].split() == ["ATTEMPT", "STARTED_AT", "TOOK", "STEP", "OUTCOME", "HTTP_STATUS", "ERROR"]
    first, second, third = (line.split(None, 6) for line in lines[header + 1 : header + 4])
    assert first[0] == "1" and first[1] == attempts[0].started_at and first[3:] == [
        "to_archive", "retrying", "503", f"to_archive: forwarding to {where}: HTTP 503"
    ]  # fmt: skip
    assert (second[0], second[5]) == ("2", "502")
    assert third[0] == "3" and third[3:] == ["to_archive", "done"]
    assert third[2].endswith(("ms", "s"))
    assert lines[header + 4] == "event:", "the event as received follows the history"


def test_a_pause_and_a_run_given_back_at_shutdown_are_in_the_history_with_the_same_attempt_number(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    record = tmp_path / "runs.jsonl"

    def pipelines(seconds: str) -> str:
        return pipelines_toml(
            ([PUBLISHED], ["pause", "slow"]),
            dispatch=FAST_RETRIES,
            handlers={
                "pause": {"use": "tests.dispatch_plugins:Pause", "path": str(record), "times": 1},
                "slow": {"use": "tests.dispatch_plugins:Recorder", "path": str(record), "seconds": seconds},
            },
        )

    sent = new_event()
    config = receiver_config(tmp_path, store_config, pipelines("10m"), shutdown_timeout="1s")
    with dispatching_app(config) as server, httpx.Client(timeout=10) as client:
        assert push(client, webhook(server.url), sent).status_code == 200
        # The pause is recorded, then the next run waits in `slow` until the shutdown cuts it short.
        wait_until(lambda: len(history(store_config, sent["id"])) == 1, message="the paused run's row")
        wait_until(lambda: statuses(store_config) == {sent["id"]: "processing"}, message="the second run")
    paused, given_back = history(store_config, sent["id"])
    assert summary([paused]) == [(1, "pause", "retrying", None)]
    assert paused.error == "pause: downstream maintenance window"
    assert summary([given_back]) == [(1, "slow", RELEASED, None)]
    assert given_back.error == GIVEN_BACK
    assert statuses(store_config) == {sent["id"]: "pending"}

    config = receiver_config(tmp_path, store_config, pipelines("0s"))
    with dispatching_app(config):
        assert wait_settled(store_config, 1) == {sent["id"]: "done"}
    assert summary(history(store_config, sent["id"])) == [
        (1, "pause", "retrying", None),
        (1, "slow", RELEASED, None),
        (1, "slow", "done", None),
    ]


def ran(event_id: str) -> NewAttempt:
    return NewAttempt(event_id, 1, now_iso(), now_iso(), "step", "done", "", None)


def test_an_outcome_refused_because_the_claim_was_taken_over_writes_no_attempt(store_config: StoreConfig) -> None:
    taken = event("instance")

    async def scenario(db: Database) -> tuple[list[Attempt], bool, bool, int]:
        assert await insert_event(db, taken, "push")
        old, new = queue.claim_token("paused", 1), queue.claim_token("other", 1)
        [first] = await queue.claim(db, old, lease=60)
        # Its lease runs out (the worker was paused that long), and another worker takes the event over.
        await db.execute(
            "UPDATE inbox SET lease_until = :past WHERE seq = :seq", {"past": iso_after(-1), "seq": first.seq}
        )
        [second] = await queue.claim(db, new, lease=60)
        assert first.seq == second.seq
        lost = await queue.finish(db, first.seq, old, "done", history=ran(taken.id))
        released = await queue.release_claims(db, "paused", {(first.seq, old): ran(taken.id)})
        kept = await queue.finish(db, second.seq, new, "done", history=ran(taken.id))
        return await event_attempts(db, taken.id), lost, kept, released

    attempts, lost, kept, released = run_on(store_config, scenario)
    assert (lost, released, kept) == (False, 0, True)
    assert len(attempts) == 1, "only the new owner's run is in the history"
