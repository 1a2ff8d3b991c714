"""Soak the receiver: pushes at a steady rate for a long time, handlers against a faulty Altinn, SIGKILL and restart.

    .venv/bin/python bench/soak.py [--duration 30m] [--rate 5] [--kill-every 3m] [--fault-rate 0.1] [--lease 10s]
                                   [--sample-interval 10s] [--warmup 30s] [--settle 2m] [--folder DIR] [--json]

One `altinn-receiver serve` (as a recipient: the default pipeline fetch_correspondence, download_attachments,
store) against the simulator in its own process, where every Correspondence API call takes 20 ms more and fails
with 503 at `--fault-rate`. For `--duration` the soak pushes one `correspondencepublished` event `--rate` times a
second, each of a correspondence of its own with one attachment, as Altinn would: a push that is not answered 200
(the receiver is down, or refuses) is sent again a second later until it is. Every `--kill-every` the receiver gets
SIGKILL and is started again at once (0: never). Every `--sample-interval` it reads the receiver's RSS and open
files from /proc.

After the duration the pushes stop, the inbox is given `--settle` to finish, and the receiver is stopped with
SIGTERM. It then reports every acknowledged event's final state: `lost` (acknowledged, not in the inbox) and
`stuck` (still `processing`) must be 0; `unfinished` counts those still `pending` or `retrying` when time ran out.
Also each process life's RSS and open files after `--warmup` (first, last, max: flat means last close to first),
and the attachment `.part` files left on disk (a download cut short by SIGKILL leaves one; a later run of the same
attachment does not clean it up unless the downloader does). Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import REPO, SimulatorProcess, progress, rss_mb, send_correspondences, wait_listening
from receiver.durations import parse_duration
from receiver.onboarding.demo import ReceiverSetup, register_identity

RESOURCE = "urn:altinn:resource:bench-soak"
SENDER_ORG = "991825827"
RECIPIENT_ORG = "312345678"
SCOPES = ("altinn:events.subscribe", "altinn:correspondence.read")
PUBLISHED = "no.altinn.correspondence.correspondencepublished"
SOURCE = "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence"
RESEND_AFTER_S = 1.0
UNFINISHED = ("pending", "retrying", "processing")


@dataclass
class Life:
    """One receiver process from start to SIGKILL (or the final SIGTERM), and its samples after the warm-up."""

    pid: int
    started: float
    rss_mb: list[float] = field(default_factory=list)
    open_files: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def spread(values: list[float] | list[int]) -> dict[str, float]:
            return {"first": values[0], "last": values[-1], "max": max(values)} if values else {}

        return {"pid": self.pid, "samples": len(self.rss_mb), "rss_mb": spread(self.rss_mb),
                "open_files": spread(self.open_files)}  # fmt: skip


class Receiver:
    """`altinn-receiver serve` in a subprocess that can be killed and started again; its output in serve.log."""

    def __init__(self, config: Path, folder: Path, health: str) -> None:
        self.config, self.folder, self.health = config, folder, health
        self.process: subprocess.Popen[bytes] | None = None
        self.lives: list[Life] = []

    def start(self) -> None:
        with (self.folder / "serve.log").open("ab") as log:
            # One process: its memory and open files are read from /proc by its pid.
            self.process = subprocess.Popen([sys.executable, "-m", "receiver", "serve", "--config", str(self.config),
                                             "--single-process"],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
        self.lives.append(Life(self.process.pid, time.monotonic()))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def sample(self, warmup: float) -> tuple[float, int] | None:
        """RSS (MB) and open files of the running process, kept for its life once past `warmup` seconds."""
        life = self.lives[-1]
        try:
            rss, files = rss_mb(life.pid), len(os.listdir(f"/proc/{life.pid}/fd"))
        except FileNotFoundError:  # between a kill and the next start
            return None
        if time.monotonic() - life.started >= warmup:
            life.rss_mb.append(round(rss, 1))
            life.open_files.append(files)
        return rss, files


def event_for(correspondence: str) -> dict[str, str]:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": SOURCE, "type": PUBLISHED,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "resource": RESOURCE,
            "resourceinstance": correspondence}  # fmt: skip


def inbox_states(store: Path, ids: set[str]) -> dict[str, str]:
    """The status of each of `ids` in the inbox (absent ones are missing)."""
    with closing(sqlite3.connect(store)) as conn:
        rows = conn.execute("SELECT id, status FROM inbox").fetchall()
    return {event_id: status for event_id, status in rows if event_id in ids}


def count_unfinished(store: Path) -> int:
    with closing(sqlite3.connect(store)) as conn:
        placeholders = ",".join("?" * len(UNFINISHED))
        return int(
            conn.execute(f"SELECT COUNT(*) FROM inbox WHERE status IN ({placeholders})", UNFINISHED).fetchone()[0]
        )


def run(args: argparse.Namespace, folder: Path, say: Any) -> dict[str, Any]:
    duration, kill_every = parse_duration(args.duration), parse_duration(args.kill_every)
    interval, warmup = parse_duration(args.sample_interval), parse_duration(args.warmup)
    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        identity = register_identity(sim, folder, org=RECIPIENT_ORG, service_owner=None, scopes=SCOPES)
        dispatch = {"concurrency": 8, "lease": args.lease, "poll_interval": "200ms", "backoff_base": "500ms",
                    "backoff_cap": "10s"}  # fmt: skip
        setup = ReceiverSetup(sim.url, identity, folder / "receiver.db", [], catchup={"enabled": False},
                              dispatch=dispatch, role="recipient",
                              extra=f'[handlers.download_attachments]\ndir = "{folder / "attachments"}"\n')  # fmt: skip
        config = folder / "receiver.toml"
        setup.write(config)
        planned = max(1, round(duration * args.rate))
        say(f"sending {planned} correspondences to the simulator...")
        correspondences = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, planned, attachments=1)
        sim.admin.put("/faults", json={"path": "/correspondence/api/v1/*", "latency": "20ms",
                                       "error_rate": args.fault_rate, "error_status": 503})  # fmt: skip
        base = f"http://127.0.0.1:{setup.port}"
        receiver = Receiver(config, folder, f"{base}/healthz")
        receiver.start()
        assert receiver.process is not None
        wait_listening(receiver.health, receiver.process, folder / "serve.log")

        acknowledged: set[str] = set()
        waiting: list[tuple[float, dict[str, str]]] = []  # pushes to send (again) at a time
        refused = kills = 0
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        next_push, next_sample, next_kill = started, started, started + kill_every if kill_every else float("inf")
        with httpx.Client(timeout=10) as client:

            def push(event: dict[str, str]) -> bool:
                try:
                    answer = client.post(f"{base}/events", params={"code": setup.secret}, json=event)
                except httpx.TransportError:
                    return False
                return answer.status_code == 200

            while (now := time.monotonic()) < started + duration or waiting:
                if now >= started + duration + parse_duration(args.settle):
                    break  # pushes still refused at the end: counted, never acknowledged
                while correspondences and now < started + duration and now >= next_push:
                    waiting.append((now, event_for(correspondences.pop())))
                    next_push += 1 / args.rate
                due = [item for item in waiting if item[0] <= now]
                waiting = [item for item in waiting if item[0] > now]
                for _, event in due:
                    if push(event):
                        acknowledged.add(event["id"])
                    else:
                        refused += 1
                        waiting.append((now + RESEND_AFTER_S, event))
                if next_kill <= now < started + duration:
                    receiver.kill()
                    kills += 1
                    receiver.start()
                    next_kill += kill_every
                    say(f"{now - started:6.0f}s  SIGKILL #{kills}, started again")
                if now >= next_sample:
                    measured = receiver.sample(warmup)
                    if measured is not None:
                        rss, files = measured
                        samples.append({"t": round(now - started, 1), "pid": receiver.lives[-1].pid,
                                        "rss_mb": round(rss, 1), "open_files": files,
                                        "acknowledged": len(acknowledged),
                                        "unfinished": count_unfinished(setup.store)})  # fmt: skip
                        say(f"{now - started:6.0f}s  rss {rss:6.1f} MB  files {files:4d}  acknowledged"
                            f" {len(acknowledged):6d}  unfinished {samples[-1]['unfinished']:5d}")  # fmt: skip
                    next_sample += interval
                wake = min([next_sample, next_kill, *(at for at, _ in waiting)])
                if correspondences and now < started + duration:
                    wake = min(wake, next_push)
                time.sleep(max(0.0, min(wake, started + duration) - time.monotonic()))

            settle_until = time.monotonic() + parse_duration(args.settle)
            while count_unfinished(setup.store) and time.monotonic() < settle_until:
                time.sleep(0.5)
            exit_code = receiver.stop()

    states = inbox_states(setup.store, acknowledged)
    final = {status: list(states.values()).count(status) for status in sorted(set(states.values()))}
    parts = sorted(str(path.relative_to(folder)) for path in (folder / "attachments").rglob("*.part"))
    return {
        "duration_s": duration,
        "rate_per_s": args.rate,
        "kill_every_s": kill_every,
        "fault_rate": args.fault_rate,
        "kills": kills,
        "acknowledged": len(acknowledged),
        "refused_pushes": refused,
        "never_acknowledged": len(waiting),
        "final": final,
        "lost": len(acknowledged - set(states)),
        "stuck": final.get("processing", 0),
        "unfinished": sum(final.get(status, 0) for status in ("pending", "retrying")),
        "dead": final.get("dead", 0),
        "orphaned_part_files": len(parts),
        "exit_code": exit_code,
        "lives": [life.summary() for life in receiver.lives],
        "samples": samples,
        "folder": str(folder),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="30m", help="how long to push (default 30m)")
    parser.add_argument("--rate", type=float, default=5.0, help="pushes per second (default 5)")
    parser.add_argument("--kill-every", default="3m", help="SIGKILL and restart this often (default 3m; 0: never)")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of Altinn calls that fail with 503")
    parser.add_argument("--sample-interval", default="10s", help="between /proc samples (default 10s)")
    parser.add_argument("--warmup", default="30s", help="a life's samples before this are not summarised")
    parser.add_argument("--lease", default="10s", help="[dispatch] lease: how soon a killed run is taken again")
    parser.add_argument("--settle", default="2m", help="after the pushes, how long events may take to finish")
    parser.add_argument("--folder", type=Path, help="keep the store, logs and attachments here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    say = progress(args.json)
    result = run(args, folder, say)
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps({key: value for key, value in result.items() if key != "samples"}, indent=2))


if __name__ == "__main__":
    main()
