"""Benchmark the webhook while the dispatcher is busy: wrk's p50/p99 on `POST /events` with and without a backlog.

    .venv/bin/python bench/contention.py [--backlog 20000] [--hot 8000] [--seconds 10] [--warmup 2]
                                         [--connections 32] [--json]

Both runs use one `altinn-receiver serve` (the service-owner default pipelines) against the simulator in its own
process, with 50 ms added to every Correspondence API call, as `bench/pipeline.py` sets them up:

- **idle**: no backlog; the pushed events (attachment events with unique ids and instances, which the default
  pipelines only `store`) are dispatched as they arrive;
- **busy**: the same, while the dispatcher drains a backlog of `--backlog` events through fetch_correspondence +
  store at `[dispatch] concurrency` 16 (the pushes are newer, so they wait behind it);
- **hot**: the same, while `--hot` events of one correspondence wait: they run one at a time, so every other slot
  is free for the pushes, and each claim has to get past the busy correspondence's backlog.

The webhook and the dispatcher write the same SQLite file, so this shows how much the dispatcher's writes delay the
webhook's acknowledgements. Prints wrk's requests/s, p50 and p99 of each run and the dispatcher's events/s during the
busy one. Not a test: numbers depend on the machine (and on whatever else runs on it).
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

from bench.support import (
    Result,
    SimulatorProcess,
    WrkLoad,
    count_done,
    ensure_wrk,
    send_correspondences,
    serving,
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


def run(load: WrkLoad, wrk: str, folder: Path, backlog: int, hot: int = 0) -> tuple[Result, float]:
    """One receiver, `backlog` events (`PER_CORRESPONDENCE` per correspondence) or `hot` events of one
    correspondence waiting in its inbox, wrk on its webhook; wrk's result and the events/s the dispatcher finished
    while wrk measured."""
    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SERVICE_OWNER_ORG)
        dispatch = {"concurrency": 16, "poll_interval": "200ms"}
        setup = ReceiverSetup(sim.url, register_identity(sim, folder), folder / "receiver.db", [],
                              catchup={"enabled": False}, dispatch=dispatch)  # fmt: skip
        config = folder / "receiver.toml"
        setup.write(config)
        if backlog:
            correspondences = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, backlog // PER_CORRESPONDENCE)
            write_backlog(setup.store, RESOURCE, correspondences, PER_CORRESPONDENCE, random.Random(1))
        if hot:
            [correspondence] = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, 1)
            write_backlog(setup.store, RESOURCE, [correspondence], hot, random.Random(1))
        sim.admin.put("/faults", json={"path": "/correspondence/api/v1/*", "latency": f"{LATENCY_MS}ms"})
        script = folder / "push.lua"
        script.write_text(wrk_script(PUSH_BODY))
        with serving(config, folder) as process:
            wait_listening(f"http://127.0.0.1:{setup.port}/healthz", process, folder / "serve.log")
            url = f"http://127.0.0.1:{setup.port}/events?code={setup.secret}"
            name = f"webhook, backlog {backlog}, {hot} of one correspondence"
            done_before, started = count_done(setup.store), time.monotonic()
            result = warm_then_measure(wrk, url, script, load, name, process.pid)
            rate = (count_done(setup.store) - done_before) / (time.monotonic() - started)
    return result, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backlog", type=int, default=20_000, help="events waiting in the busy run (default 20000; 0 leaves it out)"
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
    chosen = [("idle", 0, 0), ("busy", args.backlog, 0), ("hot", 0, args.hot)]
    for label, backlog, hot in [run for run in chosen if run[0] == "idle" or run[1] or run[2]]:
        with tempfile.TemporaryDirectory(prefix=f"bench-contention-{label}-") as tmp:
            result, rate = run(load, wrk, Path(tmp), backlog, hot)
        runs.append({"run": label, "backlog": backlog, "hot": hot, **result.__dict__,
                     "dispatched_per_s": round(rate, 1)})  # fmt: skip
    if args.json:
        print(json.dumps(runs))
        return
    print(f"{'run':<6} {'backlog':>8} {'hot':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'dispatched/s':>13}  errors")
    for r in runs:
        print(f"{r['run']:<6} {r['backlog']:>8} {r['hot']:>6} {r['requests_per_s']:8.0f} {r['p50_ms']:8.2f}"
              f" {r['p99_ms']:8.2f} {r['dispatched_per_s']:13.1f}  {r['errors']}")  # fmt: skip


if __name__ == "__main__":
    main()
