"""Each benchmark runs as its users run it (`python bench/X.py ... --json`), at tiny sizes, and prints a result with
the keys it documents and numbers that are there: a smoke run, so that a script that no longer runs is a failing test
and not a surprise at the next measurement. The numbers themselves depend on the machine and are not checked.

wrk is required, not optional: without it these tests fail (never skip) and say how to install it."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# Generous: a run takes about 10 s on a quiet 2-core machine, and other test runs may share the cores.
TIMEOUT = 120.0


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        pytest.fail(
            "wrk is not installed, and the benchmark smoke runs need it: apt-get install -y wrk (Debian package wrk;"
            " .ci/run installs it)",
            pytrace=False,
        )


def run_bench(script: str, *flags: str, tmp_path: Path) -> Any:
    """Run bench/`script` with `flags` and --json; its parsed output. Files it keeps (pipeline.py keeps its folder)
    go to `tmp_path`; on a timeout the script and the servers it started are killed."""
    command = [sys.executable, str(REPO / "bench" / script), *flags, "--json"]
    environ = {**os.environ, "TMPDIR": str(tmp_path)}
    pipe = subprocess.PIPE
    with subprocess.Popen(
        command, cwd=REPO, env=environ, stdout=pipe, stderr=pipe, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"bench/{script} did not finish in {TIMEOUT:g}s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    assert process.returncode == 0, f"bench/{script} exited with {process.returncode}\nstderr:\n{stderr}"
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"bench/{script} --json printed no JSON\nstdout:\n{stdout}\nstderr:\n{stderr}")


def assert_positive(result: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, f"{key} = {value!r} in {result}"


def assert_wrk_run(result: dict[str, Any]) -> None:
    """A wrk run's result: a rate, latencies, CPU per request, and no answer other than 2xx."""
    assert_positive(result, "requests_per_s", "p50_ms", "p99_ms", "loop_cpu_us", "process_cpu_us")
    assert result["p50_ms"] <= result["p99_ms"], result
    assert "Non-2xx" not in result["errors"], result


@pytest.mark.slow
def test_ingest_measures_the_bare_endpoint_and_the_webhook_on_both_stores(tmp_path: Path) -> None:
    require_wrk()
    output = run_bench("ingest.py", "--seconds", "1", "--warmup", "1", tmp_path=tmp_path)
    bare, durable, postgresql = output["results"]
    assert [r["name"][:3] for r in (bare, durable, postgresql)] == ["(a)", "(b)", "(c)"], output
    assert_wrk_run(bare)
    assert_wrk_run(durable)
    assert_wrk_run(postgresql)
    assert_positive(output, "ratio", "ratio_postgresql", "load")
    assert_positive(output["fsync"], "p50_ms_before", "p90_ms_before", "p50_ms_after", "p90_ms_after")


@pytest.mark.slow
def test_drivers_measures_psycopg_on_a_database_of_its_own(tmp_path: Path, postgres_database: str) -> None:
    output = run_bench("drivers.py", "--url", postgres_database, "--seconds", "0.5", tmp_path=tmp_path)
    assert_positive(output["psycopg"], "commits_per_s", "events_per_s", "cpu_us_per_event", "claims_per_s")


@pytest.mark.slow
def test_history_drains_a_backlog_with_and_without_the_attempts_rows_on_both_stores(tmp_path: Path) -> None:
    output = run_bench("history.py", "--events", "200", "--rounds", "1", tmp_path=tmp_path)
    assert [run["backend"] for run in output] == ["sqlite", "postgresql"], output
    for run in output:
        assert_positive(run, "with_history_per_s", "without_history_per_s", "with_history_cpu_us_per_event",
                        "without_history_cpu_us_per_event")  # fmt: skip
        assert len(run["with_history_rounds_per_s"]) == len(run["without_history_rounds_per_s"]) == 1, run


@pytest.mark.slow
def test_pipeline_drains_a_backlog_through_fetch_and_store(tmp_path: Path) -> None:
    output = run_bench("pipeline.py", "--events", "300", "--sample-interval", "0.1", tmp_path=tmp_path)
    assert output["events"] == 300, output
    assert output["stored_events"] == 300 and output["dead"] == 0, output
    assert_positive(
        output,
        "ideal_per_s",
        "steady_per_s",
        "of_ideal",
        "overall_per_s",
        "receiver_cpu_ms_per_event",
        "receiver_cpu_of_a_core",
        "rss_at_10pct_mb",
        "rss_peak_after_mb",
    )


@pytest.mark.slow
def test_wakeup_measures_push_to_done_in_one_and_in_two_processes_on_both_stores(tmp_path: Path) -> None:
    output = run_bench("wakeup.py", "--events", "10", "--gap", "0.01", tmp_path=tmp_path)
    runs = output["runs"]
    assert [(run["mode"][:3], run["store"]) for run in runs] == [
        ("one", "sqlite"), ("one", "postgresql"), ("two", "sqlite"), ("two", "postgresql")
    ], output  # fmt: skip
    for run in runs:
        assert_positive(run, "p50_ms", "p99_ms", "max_ms")


@pytest.mark.slow
def test_contention_measures_the_webhook_idle_while_a_backlog_drains_in_each_mode_and_beside_a_hot_one(
    tmp_path: Path,
) -> None:
    require_wrk()
    flags = ("--backlog", "300", "--hot", "300", "--seconds", "1", "--warmup", "0")
    output = run_bench("contention.py", *flags, tmp_path=tmp_path)
    runs = output["runs"]
    assert [(r["run"], r["mode"], r["backlog"], r["hot"]) for r in runs] == [
        ("bare", "", 0, 0),
        ("idle", "two processes", 0, 0),
        ("busy", "two processes", 300, 0),
        ("busy", "one process", 300, 0),
        ("hot", "two processes", 0, 300),
    ]
    for result in runs:
        assert_wrk_run(result)
    # The dispatcher had begun (the script waits for an event of the backlog done before it measures); how many it
    # finished in a one-second run under wrk depends on the machine: none at all, in one process under load.
    for result in runs[2:]:
        rate = result["dispatched_per_s"]
        assert isinstance(rate, float) and math.isfinite(rate) and rate >= 0, result
        assert result["backlog_left"] < result["backlog"] + result["hot"], result
    assert list(output["summary"]) == [f"{r['run']}, {r['mode']}" for r in runs[1:]]
    for ratios in output["summary"].values():
        assert_positive(ratios, "p99_of_idle", "requests_of_bare")


@pytest.mark.slow
def test_catchup_measures_each_store_against_a_bare_reader_of_the_pull_api(tmp_path: Path) -> None:
    output = run_bench("catchup.py", "--events", "3000", "--rounds", "1", tmp_path=tmp_path)
    assert [r["name"] for r in output["runs"]] == ["bare", "sqlite", "postgresql"], output
    for run in output["runs"]:
        assert_positive(run, "per_s", "cpu_us_per_event")
    assert_positive(output, "bare_per_s", "sqlite_per_s", "postgresql_per_s", "sqlite_of_bare", "postgresql_of_bare")


@pytest.mark.slow
def test_workers_measures_dispatch_through_one_and_three_worker_processes_on_postgresql(tmp_path: Path) -> None:
    flags = ("--events", "100", "--latency", "0.02", "--sample-interval", "0.1")
    output = run_bench("workers.py", *flags, tmp_path=tmp_path)
    assert [(r["workers"], r["events"]) for r in output["runs"]] == [(1, 100), (3, 100)], output
    for run in output["runs"]:
        assert_positive(run, "ideal_per_s", "steady_per_s", "of_ideal", "overall_per_s", "cpu_ms_per_event")
    assert_positive(output, "scaling")


@pytest.mark.slow
def test_traces_measures_the_webhook_with_traces_off_and_on(tmp_path: Path) -> None:
    require_wrk()
    output = run_bench("traces.py", "--seconds", "1", "--warmup", "0", "--rounds", "1", tmp_path=tmp_path)
    assert [r["name"] for r in output["results"]] == ["traces off (round 1)", "traces on, exported (round 1)"]
    for result in output["results"]:
        assert_wrk_run(result)
    assert output["collector"]["exports"] >= 1, "the spans of the run with traces on reached the collector"
    assert_positive(output["off_path"], "with_ns", "without_ns")
    assert_positive(output["summary"]["traces off"], "requests_per_s", "loop_cpu_us", "process_cpu_us")


@pytest.mark.slow
def test_brokers_measures_fetch_and_forward_to_each_broker_against_fetch_and_store(tmp_path: Path) -> None:
    """Needs the machine's RabbitMQ and NATS with JetStream, as the broker tests do."""
    output = run_bench("brokers.py", "--events", "100", "--rounds", "1", "--sample-interval", "0.1", tmp_path=tmp_path)
    assert [run["pipeline"] for run in output["runs"]] == [
        "fetch_correspondence + store",
        "fetch_correspondence + forward_amqp",
        "fetch_correspondence + forward_nats",
    ]
    for run in output["runs"]:
        assert run["events"] == run["delivered"] == 100, run
        assert_positive(run, "steady_per_s", "overall_per_s", "receiver_cpu_ms_per_event", "pipeline_ms_mean")
    assert [run["forward_ms_mean"] > 0 for run in output["runs"]] == [False, True, True]
    assert [run["broker_cpu_ms_per_event"] > 0 for run in output["runs"]] == [False, True, True]
    assert_positive(output, "amqp_of_store", "nats_of_store")
    assert_positive(output["median_steady_per_s"], "store", "forward_amqp", "forward_nats")


@pytest.mark.slow
def test_soak_pushes_kills_and_restarts_and_every_acknowledged_event_ends_done(tmp_path: Path) -> None:
    flags = ("--duration", "6s", "--kill-every", "2500ms", "--sample-interval", "1s", "--warmup", "0", "--lease", "2s",
             "--settle", "60s")  # fmt: skip
    output = run_bench("soak.py", *flags, tmp_path=tmp_path)
    assert output["kills"] == 2 and len(output["lives"]) == 3, output
    assert output["acknowledged"] > 0 and output["never_acknowledged"] == 0, output
    assert output["lost"] == 0 and output["stuck"] == 0 and output["unfinished"] == 0, output
    assert output["final"]["done"] + output["dead"] == output["acknowledged"], output
    assert output["exit_code"] == 0, output
    assert isinstance(output["orphaned_part_files"], int), output
    assert_positive(output["lives"][-1]["rss_mb"], "max")
    assert_positive(output["lives"][-1]["open_files"], "max")
    assert output["samples"], output
