"""Several `serve` processes on one store, as a deployment runs them (issue 19): on PostgreSQL three replicas behind
a round-robin balancer while one is SIGKILLed and started again, and a rolling restart while pushes arrive; on
SQLite two processes handing the sync lease over when its holder dies."""

from __future__ import annotations

import functools
import itertools
import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import SCOPES, ReceiverSetup, register_identity
from receiver.server_thread import free_port
from receiver.timeutil import now, parse_iso
from tests.dispatch_support import FAST_RETRIES, RESOURCE, SENDER_ORG
from tests.ingest_support import SECRET, new_event, run_cli
from tests.replicas_support import Replica, RoundRobin, overlapping, replicas
from tests.store_backends import rows, store_toml
from tests.support import wait_until

RECIPIENTS = ("312345678", "313367002", "310654321")


def owner_setup(sim: RunningSimulator, tmp_path: Path, store_url: str, port: int, interval: str) -> ReceiverSetup:
    """The service owner's receiver, subscribed to its resource at `port` (where the balancer listens), catching up
    every `interval`, its claims given up 3 s after a worker dies."""
    sim.set_resource_owner(RESOURCE, SENDER_ORG)
    identity = register_identity(sim, tmp_path, org=SENDER_ORG, scopes=SCOPES)
    return ReceiverSetup(
        sim.url,
        identity,
        tmp_path / "receiver.db",
        [SubscriptionConfig(RESOURCE)],
        port=port,
        catchup={"interval": interval, "start": "now"},
        dispatch={**FAST_RETRIES, "lease": "3s"},
        store_url=store_url,
    )


def resource_events(sim: RunningSimulator) -> list[dict[str, Any]]:
    return [e for e in sim.state_snapshot()["events"] if e.get("resource") == RESOURCE]


def acknowledged(sim: RunningSimulator) -> dict[str, str]:
    """The events a replica answered 2xx to the simulator's push, with when the simulator had that answer."""
    deliveries = sim.state_snapshot()["deliveries"]
    return {
        d["event_id"]: next(a["at"] for a in d["attempts"] if a["outcome"].startswith("2"))
        for d in deliveries
        if d["kind"] == "event" and d["status"] == "delivered"
    }


def not_done(store: StoreConfig, ids: set[str]) -> list[dict[str, Any]]:
    """What keeps the test waiting: each event not done, with its inbox row (or none: never stored)."""
    inbox = {r["id"]: r for r in rows(store, "SELECT id, status, attempts, last_error FROM inbox")}
    return [
        inbox.get(i, {"id": i, "status": "not in the inbox"})
        for i in sorted(ids)
        if inbox.get(i, {}).get("status") != "done"
    ]


def check_order(inbox: list[dict[str, Any]], runs: list[dict[str, Any]], pushed: dict[str, str]) -> int:
    """Each instance's events ran one at a time, and in `time` order as far as the receivers could know it: an
    event acknowledged (so committed) before a later one of its instance arrived was done before that one started.
    The number of such pairs (events of one instance stored at once may be committed in either order)."""
    its_runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        its_runs[run["event_id"]].append(run)
    by_instance: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in inbox:
        by_instance[row["resourceinstance"]].append(row)
    pairs = 0
    for instance, its in by_instance.items():
        spans = sorted((run["started_at"], run["finished_at"]) for row in its for run in its_runs[row["id"]])
        for (_, finished), (started, _) in itertools.pairwise(spans):
            assert started >= finished, f"two runs of {instance} at once"
        for earlier, later in itertools.permutations(its, 2):
            # Committed before the later one arrived: acknowledged to Altinn, or already claimed by a worker.
            seen = [pushed[earlier["id"]]] if earlier["id"] in pushed else []
            seen += [run["started_at"] for run in its_runs[earlier["id"]]]
            known = min(seen, default="~") <= later["received_at"]
            if known and parse_iso(earlier["time"]) < parse_iso(later["time"]):
                pairs += 1
                done = max(run["finished_at"] for run in its_runs[earlier["id"]])
                assert done <= min(run["started_at"] for run in its_runs[later["id"]]), f"{instance} out of order"
    return pairs


def test_three_replicas_on_postgresql_one_killed_and_restarted_lose_nothing_and_sync_on_one_at_a_time(
    tmp_path: Path, store_url: str
) -> None:
    store = StoreConfig(url=store_url)
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        balancer_port = free_port()
        setup = owner_setup(sim, tmp_path, store_url, balancer_port, "2s")
        config = setup.toml()
        with replicas(tmp_path, config, ["a", "b", "c"]) as started, RoundRobin(started, balancer_port):
            holders = wait_until(lambda: {r.lease().get("holder") for r in started} - {"", None},
                                 message="one holder of the sync lease")  # fmt: skip
            assert len(holders) == 1
            [holder] = [r for r in started if r.lease()["held_here"]]
            wait_until(lambda: holder.readyz()["services"]["subscriptions"]["state"] == "validated",  # type: ignore[index]
                       timeout=20, message="the subscription validated")  # fmt: skip
            sent = [sim.send_correspondence(RESOURCE, RECIPIENTS[n % 3], attachments=n % 2) for n in range(15)]
            wait_until(lambda: len(acknowledged(sim)) >= 10, timeout=20, message="pushes acknowledged")
            holder.kill()  # mid-stream, with claims and the sync lease held
            sent += [sim.send_correspondence(RESOURCE, RECIPIENTS[n % 3], attachments=n % 2) for n in range(15)]
            others = [r for r in started if r is not holder]
            took_over = wait_until(lambda: [r for r in others if r.lease()["held_here"]], timeout=15,
                                   message="another replica to take the sync lease over")  # fmt: skip
            new_holder = took_over[0].lease()["this_process"]
            holder.start()
            sent += [sim.send_correspondence(RESOURCE, RECIPIENTS[n % 3]) for n in range(6)]
            for correspondence in sent[:12]:  # a later event of instances whose first ones are long acknowledged
                sim.admin.post(f"/correspondences/{correspondence}/read").raise_for_status()

            events = resource_events(sim)
            ids = {e["id"] for e in events}
            wait_until(lambda: not not_done(store, ids), timeout=120, interval=0.2,
                       message=lambda: f"every event done; not yet: {not_done(store, ids)}")  # fmt: skip
            # Altinn delivers every event, whether or not catch-up stored it first: the killed replica's share again
            # on its next retry, which the balancer sends elsewhere.
            wait_until(lambda: ids <= set(acknowledged(sim)), timeout=90, interval=0.2,
                       message=lambda: f"every event pushed; not yet: {ids - set(acknowledged(sim))}")  # fmt: skip
            spans = {r.name: r.held() for r in started}
            catchups = {r.name: r.logged("catch-up done") for r in started}
            leases = [r.lease() for r in started]
            pushed = acknowledged(sim)
            subscriptions = sim.state_snapshot()["subscriptions"]

    assert len(sent) == 36 and len(ids) >= 3 * 36
    assert set(pushed) == ids
    answered = {
        r.name: sum(
            line.get("type", "").startswith("no.altinn") for line in r.lines() if line["msg"] == "POST /events 200"
        )
        for r in started
    }
    assert all(answered.values()), f"pushes answered through every replica: {answered}"
    inbox = rows(store, "SELECT id, status, resourceinstance, time, received_at FROM inbox")
    assert sorted(r["id"] for r in inbox) == sorted(ids) and {r["status"] for r in inbox} == {"done"}
    stored = [r["event_id"] for r in rows(store, "SELECT event_id FROM correspondence_events")]
    assert sorted(stored) == sorted(ids), "one correspondence_events row per event"

    runs = rows(store, "SELECT event_id, started_at, finished_at FROM attempts")
    assert {run["event_id"] for run in runs} == ids
    assert check_order(inbox, runs, pushed) >= 12

    [subscription] = [s for s in subscriptions if s["resourceFilter"] == RESOURCE]
    assert subscription["validated"]

    assert len([name for name, its in spans.items() if its]) >= 2, f"the lease changed hands: {spans}"
    assert not overlapping(spans), f"two holders at once: {spans}"
    for name, moments in catchups.items():
        for moment in moments:
            assert any(start <= moment <= end for start, end in spans[name]), f"{name} caught up without the lease"
    assert {lease["holder"] for lease in leases} == {new_holder}, "the restarted one waits"
    assert sum(lease["held_here"] for lease in leases) == 1


class Pusher:
    """Pushes new events through the balancer from a thread, as Altinn does: each until it is answered 200 (a
    draining replica's 503 is tried again), keeping the ids that were acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/events?code={SECRET}"
        self.acknowledged: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                event = new_event(resourceinstance=f"instance-{len(self.acknowledged) % 7}")
                while not self._stop.is_set():
                    try:
                        if client.post(self.url, json=event).status_code == 200:
                            self.acknowledged.append(event["id"])
                            break
                    except httpx.HTTPError:
                        pass
                    self.refused += 1
                    time.sleep(0.01)  # Altinn's retry, made short

    def past(self, count: int) -> bool:
        return len(self.acknowledged) >= count

    def __enter__(self) -> Pusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_rolling_restart_of_the_webhooks_loses_nothing_it_acknowledged(tmp_path: Path, store_url: str) -> None:
    store = StoreConfig(url=store_url)
    config = (
        f'[receiver]\nsecret = "{SECRET}"\nshutdown_timeout = 5\n\n{store_toml(store)}\n'
        '[dispatch]\npoll_interval = "50ms"\n\n[catchup]\nenabled = false\n\n'
        '[[pipelines]]\ntypes = ["*"]\nhandlers = ["log"]\n'
    )
    with (
        replicas(tmp_path, config, ["worker"], args=["--role", "worker"]),
        replicas(tmp_path, config, ["a", "b"], args=["--role", "webhook"]) as webhooks,
        RoundRobin(webhooks) as balancer,
        Pusher(balancer.url) as p,
    ):
        wait_until(functools.partial(p.past, 50), timeout=20, message="pushes before the deploy")
        for webhook in webhooks:  # one at a time, the other taking the pushes meanwhile
            before = len(p.acknowledged)
            assert webhook.stop() == 0
            webhook.start()
            wait_until(functools.partial(p.past, before + 30), timeout=20, message="pushes after a restart")
        acked = list(p.acknowledged)
        ids = set(acked)
        wait_until(lambda: {r["id"] for r in rows(store, "SELECT id FROM inbox WHERE status = 'done'")} >= ids,
                   timeout=30, interval=0.2, message="the worker to do every acknowledged event")  # fmt: skip
    assert len(ids) == len(acked) >= 110, "each acknowledged once"


def test_on_sqlite_a_second_process_takes_the_sync_lease_over_when_its_holder_dies(tmp_path: Path) -> None:
    interval = 10.0
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = owner_setup(sim, tmp_path, "", free_port(), f"{interval:g}s")
        first = Replica(tmp_path, "first", setup.toml()).start()
        try:
            wait_until(lambda: first.lease()["held_here"], message="the first process to take the lease")
            second = Replica(tmp_path, "second", setup.toml()).start()
            try:
                lease = second.lease()
                assert not lease["held_here"] and lease["holder"] == first.lease()["this_process"]
                assert second.readyz()["services"]["catchup"]["state"] == "standby"  # type: ignore[index]
                first.kill()
                wait_until(lambda: second.lease()["held_here"], timeout=interval + 5, interval=0.1,
                           message="the second process to take the lease over")  # fmt: skip
                waited = (now() - first.killed_at[0]).total_seconds()
                wait_until(lambda: second.readyz()["services"]["catchup"]["runs"] >= 1,  # type: ignore[index]
                           message="the second process to catch up")  # fmt: skip
                assert second.lease()["holder"] == second.lease()["this_process"]
                shown = json.loads(run_cli("stats", "--json", "--config", str(second.config)).stdout)["sync_lease"]
                assert (shown["holder"], shown["expired"]) == (second.lease()["this_process"], False)
            finally:
                second.stop()
        finally:
            first.stop()
    assert waited < interval, f"took {waited:.1f}s, more than one [catchup] interval"
    assert not overlapping({"first": first.held(), "second": second.held()})
