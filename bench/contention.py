"""Benchmark the webhook while the dispatcher is busy: wrk's p50/p99 on `POST /events` with and without a backlog,
with `serve` as deployed (the webhook and the worker as two processes) and as one process, against bare Starlette.

    .venv/bin/python bench/contention.py [--backlog 10000] [--hot 8000] [--seconds 10] [--warmup 2]
                                         [--connections 32] [--json]

Every run but the first uses one `altinn-receiver serve` (the service-owner default pipelines) against the simulator
in its own process, with 50 ms added to every Correspondence API call, as `bench/pipeline.py` sets them up:

- **bare**: `bench/ingest.py`'s bare Starlette endpoint under the same wrk load, the ceiling of the machine;
- **idle**: `serve` (two processes), no backlog; the pushed events (attachment events with unique ids and
  instances, which the default pipelines only `store`) are dispatched as they arrive;
- **busy**: the same, while the dispatcher drains a backlog of `--backlog` events through fetch_correspondence +
  store at `[dispatch] concurrency` 16 (the pushes are newer, so they wait behind it);
- **busy, one process**: the busy run with `serve --single-process`: the webhook and the dispatcher share one
  process (and its GIL), as before there were roles;
- **hot**: the idle run, while `--hot` events of one correspondence wait: they run one at a time, so every other
  slot is free for the pushes, and each claim has to get past the busy correspondence's backlog.

A busy or hot run is measured once the dispatcher has finished a first event of the backlog (`serve` answers
/healthz before its services have started).

The webhook and the dispatcher write the same SQLite file, so this shows how much the dispatcher's work delays the
webhook's acknowledgements. Prints wrk's requests/s, p50 and p99 of each run, the dispatcher's events/s while wrk
measured and the backlog left at the end (a run whose backlog ran out measured less than a busy webhook), and the
busy runs' p99 against idle's and requests/s against bare's. Not a test: numbers depend on the machine (and on
whatever else runs on it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import measure_bare
from bench.support import (
    Result,
    SimulatorProcess,
    WrkLoad,
    count_done,
    ensure_wrk,
    send_correspondences,
    serving,
    wait_dispatching,
    wait_listening,
    warm_then_measure,
    write_backlog,
    wrk_script,
)
from receiver.onboarding.demo import SERVICE_OWNER_ORG, ReceiverSetup, register_identity

RESOURCE = "urn:altinn:resource:bench-contention"
RECIPIENT_ORG = "312345678"
LATENCY_MS = 50
PER_CORRESPONDENCE = 5

# Unique ids and resource instances (one instance per event, as Altinn's attachment events have): the pushes do not
# queue behind each other in the dispatcher.
PUSH_BODY = r"""string.format(
    '{"specversion":"1.0","id":"%s-%d","source":"https://platform.tt02.altinn.no/correspondence/api/v1/attachment",'
    .. '"type":"no.altinn.correspondence.attachmentpublished","time":"%s",'
    .. '"resource":"urn:altinn:resource:bench-contention","resourceinstance":"attachment-%s-%d"}',
    prefix, counter, os.date("!%Y-%m-%dT%H:%M:%SZ"), prefix, counter)"""


def run(load: WrkLoad, wrk: str, folder: Path, backlog: int, hot: int, *flags: str) -> tuple[Result, float, int]:
    """One receiver (`serve` with `flags`), `backlog` events (`PER_CORRESPONDENCE` per correspondence) or `hot`
    events of one correspondence waiting in its inbox, wrk on its webhook; wrk's result, the events/s the dispatcher
    finished while wrk measured, and the events still waiting at the end."""
    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SERVICE_OWNER_ORG)
        dispatch = {"concurrency": 16, "poll_interval": "200ms"}
        setup = ReceiverSetup(sim.url, register_identity(sim, folder), folder / "receiver.db", [],
                              catchup={"enabled": False}, dispatch=dispatch)  # fmt: skip
        config = folder / "receiver.toml"
        setup.write(config)
        waiting = backlog + hot
        if backlog:
            correspondences = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, backlog // PER_CORRESPONDENCE)
            write_backlog(setup.store, RESOURCE, correspondences, PER_CORRESPONDENCE, random.Random(1))
        if hot:
            [correspondence] = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, 1)
            write_backlog(setup.store, RESOURCE, [correspondence], hot, random.Random(1))
        sim.admin.put("/faults", json={"path": "/correspondence/api/v1/*", "latency": f"{LATENCY_MS}ms"})
        script = folder / "push.lua"
        script.write_text(wrk_script(PUSH_BODY))
        with serving(config, folder, *flags) as process:
            wait_listening(f"http://127.0.0.1:{setup.port}/healthz", process, folder / "serve.log")
            if waiting:  # else the measurement may start before the dispatcher, and a busy run measure an idle one
                wait_dispatching(setup.store, process, folder / "serve.log")
            url = f"http://127.0.0.1:{setup.port}/events?code={setup.secret}"
            name = f"webhook, backlog {backlog}, {hot} of one correspondence"
            done_before, started = count_done(setup.store), time.monotonic()
            result = warm_then_measure(wrk, url, script, load, name, process.pid)
            done = count_done(setup.store)
            rate = (done - done_before) / (time.monotonic() - started)
    return result, rate, max(waiting - done, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backlog", type=int, default=10_000, help="events waiting in the busy runs (default 10000; 0 leaves them out)"
    )
    parser.add_argument(
        "--hot", type=int, default=8000, help="events of one correspondence in the hot run (default 8000; 0: none)"
    )
    WrkLoad.add_arguments(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = WrkLoad.from_args(args)
    wrk = ensure_wrk()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-contention-bare-") as tmp:
        script = Path(tmp) / "push.lua"
        script.write_text(wrk_script(PUSH_BODY))
        bare = measure_bare(wrk, script, load, "bare Starlette 200")
    runs.append({"run": "bare", "mode": "", "backlog": 0, "hot": 0, **bare.__dict__, "dispatched_per_s": 0.0,
                 "backlog_left": 0})  # fmt: skip
    chosen = [("idle", "two processes", 0, 0, ()), ("busy", "two processes", args.backlog, 0, ()),
              ("busy", "one process", args.backlog, 0, ("--single-process",)),
              ("hot", "two processes", 0, args.hot, ())]  # fmt: skip
    for label, mode, backlog, hot, flags in [run for run in chosen if run[0] == "idle" or run[2] or run[3]]:
        with tempfile.TemporaryDirectory(prefix=f"bench-contention-{label}-") as tmp:
            result, rate, left = run(load, wrk, Path(tmp), backlog, hot, *flags)
        runs.append({"run": label, "mode": mode, "backlog": backlog, "hot": hot, **result.__dict__,
                     "dispatched_per_s": round(rate, 1), "backlog_left": left})  # fmt: skip
    idle = next(r for r in runs if r["run"] == "idle")
    summary = {
        f"{r['run']}, {r['mode']}": {
            "p99_of_idle": round(r["p99_ms"] / idle["p99_ms"], 2),
            "requests_of_bare": round(r["requests_per_s"] / bare.requests_per_s, 3),
        }
        for r in runs[1:]
    }
    if args.json:
        print(json.dumps({"runs": runs, "summary": summary}))
        return
    print(f"{'run':<6} {'mode':<14} {'backlog':>8} {'hot':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'dispatched/s':>13} {'left':>6}  errors")  # fmt: skip
    for r in runs:
        print(f"{r['run']:<6} {r['mode']:<14} {r['backlog']:>8} {r['hot']:>6} {r['requests_per_s']:8.0f}"
              f" {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['dispatched_per_s']:13.1f} {r['backlog_left']:>6}"
              f"  {r['errors']}")  # fmt: skip
    for name, ratios in summary.items():
        print(
            f"{name}: p99 {ratios['p99_of_idle']}x idle's (target <= 2), req/s {ratios['requests_of_bare']} of"
            " bare's (target >= 0.5)"
        )


if __name__ == "__main__":
    main()
