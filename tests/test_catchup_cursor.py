"""Catch-up through the pull API: the cursor, `start = "now" | "beginning"`, deduplication against pushes, and a
cursor that a page filtered empty by authorisation keeps from moving."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from altinn_sim import RunningSimulator
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import Identity, ReceiverServer, ReceiverSetup, register_identity
from receiver.runtime import Runtime, Service
from receiver.sync.catchup import CatchupService
from receiver.sync.subscriptions import SubscriptionService
from tests.catchup_support import RECIPIENT, RECIPIENT_ORG, event, fresh_resource, inbox, rows
from tests.support import wait_until

OTHER = "urn:altinn:organization:identifier-no:398765432"


def publish(sim: RunningSimulator, resource: str, count: int, *, push: bool = False, **kw: str) -> list[str]:
    events = [event(resource, **kw) for _ in range(count)]
    for item in events:
        sim.publish_event(item, push=push)
    return [e["id"] for e in events]


def service_status(receiver: ReceiverServer, service: str) -> dict[str, Any]:
    """One service's part of the receiver's /readyz (`catchup`, `sync_lease`)."""
    status: dict[str, Any] = httpx.get(receiver.url + "/readyz").json()["services"][service]
    return status


def catchup_only(runtime: Runtime) -> list[Service]:
    return [CatchupService()]


def test_start_now_skips_history_and_the_cursor_survives_a_restart(
    sim: RunningSimulator, owner: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource(sim, owner.org)
    history = publish(sim, resource, 3)
    setup = ReceiverSetup(sim.url, owner, tmp_path / "r.db", [SubscriptionConfig(resource)])
    config = setup.write(tmp_path / "r.toml")
    with ReceiverServer(config, catchup_only) as receiver:
        receiver.wait_started()
    [cursor] = rows(setup.store, "SELECT * FROM catchup_cursors")
    assert cursor["after"] == history[-1] and cursor["last_success_at"]
    assert inbox(setup.store) == {}

    missed = publish(sim, resource, 2)  # while the receiver is down
    with ReceiverServer(config, catchup_only) as receiver:
        receiver.wait_started()
        status = httpx.get(receiver.url + "/readyz").json()["services"]["catchup"]
    assert inbox(setup.store) == dict.fromkeys(missed, "catchup")
    assert status["enqueued"] == 2 and status["cursors"][0]["after"] == missed[-1]


def test_start_beginning_enqueues_retention_once_and_pushed_ids_are_not_added_again(
    sim: RunningSimulator, owner: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource(sim, owner.org)
    history = publish(sim, resource, 4)
    setup = ReceiverSetup(sim.url, owner, tmp_path / "r.db", [SubscriptionConfig(resource)],
                          catchup={"start": "beginning", "interval": "1s"})  # fmt: skip
    with ReceiverServer(setup.write(tmp_path / "r.toml")) as receiver:
        receiver.wait_started()
        assert set(inbox(setup.store)) >= set(history)
        # Pushed once the subscription is validated; the next catch-up run reads the same id and adds nothing. The
        # pull API shows an event 3 ms after it is published (Altinn's 30 s at the simulator's pace), often before
        # the push lands: it fails until the push is stored, else a run may store the event first and the push
        # would be the one added again.
        wait_until(lambda: rows(setup.store, "SELECT 1 FROM subscriptions WHERE state = 'validated'"), message="valid")
        pulls_fail = {"path": "/events/api/v1/events", "method": "GET", "error_rate": 1.0}
        sim.admin.put("/faults", json=pulls_fail).raise_for_status()
        try:
            [pushed] = publish(sim, resource, 1, push=True)
            wait_until(lambda: inbox(setup.store).get(pushed) == "push", message="the push")
        finally:
            sim.admin.delete("/faults").raise_for_status()

        # A run's counts are reported when it ends, after it has moved the cursor in the store.
        status = wait_until(
            lambda: (s := service_status(receiver, "catchup"))["cursors"][0]["after"] == pushed and s,
            message="a run past it",
        )
    assert inbox(setup.store) == {**dict.fromkeys(history, "catchup"), pushed: "push"}
    assert [row["after"] for row in rows(setup.store, "SELECT after FROM catchup_cursors")] == [pushed]
    assert status["duplicates"] >= 1


def test_a_page_filtered_empty_leaves_the_cursor_stuck_and_says_so(sim: RunningSimulator, tmp_path: Path) -> None:
    resource = fresh_resource(sim, "999888777")
    recipient = register_identity(sim, tmp_path, org=RECIPIENT_ORG, service_owner=None,
                                  scopes=["altinn:events.subscribe", "altinn:correspondence.read"])  # fmt: skip
    with_subject = SubscriptionConfig(resource, subject=RECIPIENT)
    without_subject = SubscriptionConfig(resource)  # a recipient may pull without a subject; pages get filtered
    setup = ReceiverSetup(sim.url, recipient, tmp_path / "r.db", [with_subject, without_subject],
                          catchup={"interval": "1s"}, role="recipient")  # fmt: skip

    def services(runtime: Runtime) -> list[Service]:
        return [SubscriptionService(poll_initial=0.05), CatchupService(pull_lag=0, page_size=2)]

    with ReceiverServer(setup.write(tmp_path / "r.toml"), services) as receiver:
        receiver.wait_started()
        wait_until(lambda: rows(setup.store, "SELECT 1 FROM subscriptions WHERE state = 'validated'"), message="valid")
        publish(sim, resource, 2, subject=OTHER)  # first in line, and not for this recipient's eyes
        [ours] = publish(sim, resource, 1, push=True)
        wait_until(lambda: inbox(setup.store).get(ours) == "push", message="the push")

        status = wait_until(
            lambda: (s := service_status(receiver, "catchup"))["state"] == "stuck" and s, message="stuck"
        )
        metrics = httpx.get(receiver.url + "/metrics").text
    by_subject = {c["subject"]: c for c in status["cursors"]}
    assert by_subject[""]["stuck_pushes"] == 1 and by_subject[""]["pages"] == 0
    assert by_subject[RECIPIENT]["stuck_pushes"] == 0
    assert f'altinn_receiver_catchup_stuck_total{{resource="{resource}",subject="",type=""}}' in metrics
    cursors = {r["subject"]: r for r in rows(setup.store, "SELECT * FROM catchup_cursors")}
    # The subject filter avoids it: that cursor read the recipient's event (a duplicate of the push) and moved on.
    assert cursors[RECIPIENT]["after"] == ours and cursors[RECIPIENT]["stuck_since"] == ""
    assert cursors[""]["after"] == "0" and cursors[""]["stuck_since"] and cursors[""]["stuck_pushes"] == 1


def test_a_run_the_store_refuses_fails_with_a_reason_and_the_next_run_catches_up(
    sim: RunningSimulator, owner: Identity, tmp_path: Path
) -> None:
    """While another process holds the store's write lock, /readyz says why catch-up cannot store (or hold its
    lease); once the lock is gone, nothing published meanwhile is missing."""
    resource = fresh_resource(sim, owner.org)
    setup = ReceiverSetup(sim.url, owner, tmp_path / "r.db", [SubscriptionConfig(resource)],
                          catchup={"start": "beginning", "interval": "1s"})  # fmt: skip
    with ReceiverServer(setup.write(tmp_path / "r.toml")) as receiver:
        receiver.wait_started()

        # Another process holds the write lock for longer than the receiver's busy timeout.
        locker = sqlite3.connect(setup.store, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            missed = publish(sim, resource, 3)
            # The sync lease's renewal meets the lock too, and may fail first: then the holder stands by before a run
            # reaches the store (its lease lasts 5 s, a write waits 2 s), and /readyz names the reason there.
            failed = wait_until(
                lambda: (
                    service_status(receiver, "catchup").get("error")
                    or service_status(receiver, "sync_lease").get("error")
                ),
                timeout=15,
                message="a run (or the lease's renewal) failing on the store",
            )
        finally:
            locker.rollback()
            locker.close()
        assert failed == "database is locked by another connection"
        wait_until(lambda: set(inbox(setup.store)) == set(missed), timeout=15, message="the next run catching up")
        wait_until(
            lambda: all("error" not in service_status(receiver, name) for name in ("catchup", "sync_lease")),
            message="the error cleared",
        )
