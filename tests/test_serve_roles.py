"""`serve --role webhook|worker` as separate processes on one store (SQLite and PostgreSQL), and `serve` itself as
two processes under one parent that behaves as one service: signals, exit status, /readyz, /metrics, whole log
lines, a child that dies, a parent that is SIGKILLed (docs/operations.md#roles). All real processes over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from altinn_sim import SimSettings, running_simulator
from receiver.config import StoreConfig, SubscriptionConfig
from receiver.observability.merge import merge_expositions
from receiver.onboarding.demo import SCOPES, ReceiverSetup, register_identity
from tests.dispatch_plugins import recorded
from tests.dispatch_support import RESOURCE, SENDER_ORG
from tests.ingest_support import CLI, ServeProcess, config_text, new_event, push, webhook
from tests.store_backends import statuses
from tests.support import wait_until


def pipelines(record: Path) -> str:
    """A pipeline recording each run (with its process id); `poll_interval` so long that only a wake-up from the
    store (SQLite's data_version, PostgreSQL's NOTIFY) or the process's own commit can start an event in time."""
    return (
        '\n[dispatch]\npoll_interval = "1h"\n\n[catchup]\nenabled = false\n\n'
        '[[pipelines]]\ntypes = ["*"]\nhandlers = ["recorder"]\n\n'
        f'[handlers.recorder]\nuse = "tests.dispatch_plugins:Recorder"\npath = {json.dumps(str(record))}\n'
    )


def serving(tmp_path: Path, name: str, store: StoreConfig, *args: str) -> ServeProcess:
    """`serve ARGS` with its own folder for its log, on `store`, running the recording pipeline."""
    (tmp_path / name).mkdir()
    serve = ServeProcess(tmp_path / name, args=args)
    serve.config.write_text(config_text(store, serve.port) + pipelines(tmp_path / "runs.jsonl"))
    return serve


def settled(store: StoreConfig, events: list[dict[str, Any]]) -> bool:
    found = statuses(store)
    return all(found.get(event["id"]) == "done" for event in events)


def children(serve: ServeProcess) -> dict[str, int]:
    """The webhook's and the worker's process ids, as the parent logs them."""
    line = wait_until(
        lambda: next((line for line in serve.log_lines() if line["msg"] == "serving as two processes"), None),
        message="the parent to say which processes it started",
    )
    return {"webhook": line["webhook_pid"], "worker": line["worker_pid"]}


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped by whoever inherited it, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def test_the_webhook_role_stores_and_the_worker_role_processes_what_it_stored(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    hook = serving(tmp_path, "webhook", store_config, "--role", "webhook")
    worker = serving(tmp_path, "worker", store_config)
    worker.config = hook.config  # two roles, one config file: the worker's port comes from --port
    worker.args = ["--role", "worker", "--port", str(worker.port)]
    before, after = [new_event() for _ in range(3)], [new_event() for _ in range(3)]
    with hook, httpx.Client(timeout=10) as client:
        assert [push(client, webhook(hook.url), event).status_code for event in before] == [200] * 3
        ready = client.get(f"{hook.url}/readyz")
        metrics = client.get(f"{hook.url}/metrics").text
        assert set(statuses(store_config).values()) == {"pending"}
        with worker:
            wait_until(lambda: settled(store_config, before), message="the worker to run what the webhook stored")
            # Its poll_interval is an hour: only the store's wake-up can start these.
            assert [push(client, webhook(hook.url), event).status_code for event in after] == [200] * 3
            wait_until(lambda: settled(store_config, after), message="the worker to learn of new events")
            refused = push(client, webhook(worker.url), new_event())
            worker_ready = client.get(f"{worker.url}/readyz")
            worker_metrics = client.get(f"{worker.url}/metrics").text
    assert ready.status_code == 200 and ready.json()["services"] == {} and "worker" not in ready.json()
    assert "altinn_receiver_dispatch" not in metrics
    assert refused.status_code == 404
    assert worker_ready.status_code == 200 and worker_ready.json()["services"]["dispatcher"]["state"] == "running"
    assert 'altinn_receiver_dispatch_outcomes_total{handler="recorder",status="done",type="*"} 6.0' in worker_metrics
    runs = recorded(tmp_path / "runs.jsonl")
    assert sorted(run["id"] for run in runs) == sorted(event["id"] for event in before + after)
    assert {run["pid"] for run in runs} == {worker.process.pid if worker.process else 0}
    assert hook.wait() == 0 and worker.wait() == 0


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_serve_is_two_processes_that_answer_and_stop_as_one_service(
    tmp_path: Path, store_config: StoreConfig, sig: signal.Signals, status: int
) -> None:
    store = store_config
    serve = serving(tmp_path, "serve", store)
    event = new_event()
    with serve, httpx.Client(timeout=10) as client:
        pids = children(serve)
        assert push(client, webhook(serve.url), event).status_code == 200
        wait_until(lambda: settled(store, [event]), message="the worker process to run the event")
        ready = client.get(f"{serve.url}/readyz")
        metrics = client.get(f"{serve.url}/metrics").text
        for pid in pids.values():
            assert os.getpgid(pid) == pid, "a group of its own: a Ctrl-C at the terminal reaches the parent only"
        serve.signal(sig)
        assert serve.wait() == status
    assert not [pid for pid in pids.values() if alive(pid)]
    body = ready.json()
    assert ready.status_code == 200 and body["worker"]["ready"] is True
    assert body["services"]["dispatcher"]["done"] == 1, "the worker's services, as one process showed them"
    # The webhook's count and the worker's, in one exposition.
    assert 'altinn_receiver_events_received_total{channel="push"} 1.0' in metrics
    assert 'altinn_receiver_dispatch_outcomes_total{handler="recorder",status="done",type="*"} 1.0' in metrics
    assert [run["pid"] for run in recorded(tmp_path / "runs.jsonl")] == [pids["worker"]]
    lines = serve.log_lines()
    assert len([line for line in lines if line["msg"] == "drained"]) == 2, "both drained"
    assert serve.err_path.read_text() == ""


@pytest.mark.parametrize("dies", ["webhook", "worker"])
def test_a_child_that_dies_takes_the_service_down_and_the_other_drains(tmp_path: Path, dies: str) -> None:
    serve = serving(tmp_path, "serve", StoreConfig(path=tmp_path / "receiver.db"))
    with serve:
        pids = children(serve)
        os.kill(pids[dies], signal.SIGKILL)
        assert serve.wait() == 1
    other = next(name for name in pids if name != dies)
    assert not alive(pids[other])
    [error] = [line for line in serve.log_lines() if line["level"] == "error"]
    assert error["msg"] == f"the {dies} process was killed by signal 9: stopping the service"
    assert [line["msg"] for line in serve.log_lines()].count("drained") == 1, f"the {other} drained"
    assert port_free(serve.port)


def test_a_parent_killed_takes_its_children_along_and_the_port_is_free_for_the_restart(tmp_path: Path) -> None:
    store = StoreConfig(path=tmp_path / "receiver.db")
    serve = serving(tmp_path, "serve", store)
    again = serving(tmp_path, "again", store)
    again.config, again.port = serve.config, serve.port
    with serve:
        pids = children(serve)
        assert serve.process is not None
        serve.process.kill()
        serve.wait()
        with again, httpx.Client(timeout=10) as client:  # started at once, it listens on the same port
            event = new_event()
            assert push(client, webhook(again.url), event).status_code == 200
            wait_until(lambda: settled(store, [event]), message="the new service to run the event")
            assert not [pid for pid in pids.values() if alive(pid)]
            assert again.process is not None and again.process.poll() is None
            assert [run["pid"] for run in recorded(tmp_path / "runs.jsonl")] == [children(again)["worker"]]


def test_single_process_serves_and_works_in_one_process(tmp_path: Path) -> None:
    store = StoreConfig(path=tmp_path / "receiver.db")
    serve = serving(tmp_path, "serve", store, "--single-process")
    event = new_event()
    with serve, httpx.Client(timeout=10) as client:
        assert serve.process is not None
        assert push(client, webhook(serve.url), event).status_code == 200
        wait_until(lambda: settled(store, [event]), message="the event to run")
        ready = client.get(f"{serve.url}/readyz").json()
        kids = Path(f"/proc/{serve.process.pid}/task/{serve.process.pid}/children").read_text().split()
    assert kids == []
    assert "worker" not in ready and ready["services"]["dispatcher"]["done"] == 1
    assert [run["pid"] for run in recorded(tmp_path / "runs.jsonl")] == [serve.process.pid]
    assert "serving as two processes" not in serve.log_path.read_text()


def test_log_lines_of_both_processes_stay_whole_in_a_pipe(tmp_path: Path) -> None:
    """The worker logs lines of 200 kB (a pipe takes 64 kB at a time) while the webhook logs a line per push, eight at
    a time."""
    serve = ServeProcess(tmp_path)
    serve.config.write_text(
        serve.config.read_text()
        + '\n[catchup]\nenabled = false\n\n[[pipelines]]\ntypes = ["*"]\nhandlers = ["shouter"]\n\n'
        '[handlers.shouter]\nuse = "tests.dispatch_plugins:Shouter"\n'
    )
    process = subprocess.Popen([*CLI, "serve", "--config", str(serve.config)], stdout=subprocess.PIPE)
    output = bytearray()

    def read() -> None:
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 1 << 16):
            output.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    events = [new_event() for _ in range(100)]
    try:
        wait_until(lambda: b'"serving without the webhook"' in output and b'"accepting pushes"' in output, 20,
                   message="both processes to start")  # fmt: skip
        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(8) as pushing:
            codes = set(pushing.map(lambda event: push(client, webhook(serve.url), event).status_code, events))
        assert codes == {200}
        wait_until(lambda: output.count(b'"msg": "shouting"') == len(events), 30, message="every line logged")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        reader.join(10)
    lines = [json.loads(line) for line in output.decode().splitlines()]
    shouts = [line for line in lines if line["msg"] == "shouting"]
    assert sorted(len(line["text"]) for line in shouts) == [200_000 - 200_000 % 36] * len(events)
    assert len([line for line in lines if line["msg"].startswith("POST /events 200")]) == len(events)


WEBHOOK_EXPOSITION = """# HELP altinn_receiver_events_received_total Events newly added to the inbox.
# TYPE altinn_receiver_events_received_total counter
altinn_receiver_events_received_total{channel="push"} 5.0
altinn_receiver_events_received_total{channel="catchup"} 0.0
# HELP altinn_receiver_inbox_events Events in the inbox by status.
# TYPE altinn_receiver_inbox_events gauge
altinn_receiver_inbox_events{status="pending"} 2.0
# HELP altinn_receiver_ack_seconds Time to acknowledge.
# TYPE altinn_receiver_ack_seconds histogram
altinn_receiver_ack_seconds_bucket{le="0.01"} 4.0
altinn_receiver_ack_seconds_bucket{le="+Inf"} 5.0
altinn_receiver_ack_seconds_count 5.0
altinn_receiver_ack_seconds_sum 0.03
"""
WORKER_EXPOSITION = """# HELP altinn_receiver_events_received_total Events newly added to the inbox.
# TYPE altinn_receiver_events_received_total counter
altinn_receiver_events_received_total{channel="push"} 0.0
altinn_receiver_events_received_total{channel="catchup"} 7.0
# HELP altinn_receiver_inbox_events Events in the inbox by status.
# TYPE altinn_receiver_inbox_events gauge
altinn_receiver_inbox_events{status="pending"} 2.0
altinn_receiver_inbox_events{status="dead"} 1.0
# HELP altinn_receiver_ack_seconds Time to acknowledge.
# TYPE altinn_receiver_ack_seconds histogram
altinn_receiver_ack_seconds_bucket{le="0.01"} 0.0
altinn_receiver_ack_seconds_bucket{le="+Inf"} 0.0
altinn_receiver_ack_seconds_count 0.0
altinn_receiver_ack_seconds_sum 0.0
# HELP altinn_receiver_dispatch_running Runs now.
# TYPE altinn_receiver_dispatch_running gauge
altinn_receiver_dispatch_running 3.0
"""


def test_the_two_expositions_merge_into_one_that_counts_both_and_keeps_each_gauge_once() -> None:
    merged = merge_expositions(WEBHOOK_EXPOSITION, WORKER_EXPOSITION).decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(merged)
        for sample in family.samples
    }
    assert samples == {
        ("altinn_receiver_events_received_total", (("channel", "push"),)): 5.0,
        ("altinn_receiver_events_received_total", (("channel", "catchup"),)): 7.0,
        ("altinn_receiver_inbox_events", (("status", "pending"),)): 2.0,  # the store's, once
        ("altinn_receiver_inbox_events", (("status", "dead"),)): 1.0,
        ("altinn_receiver_ack_seconds_bucket", (("le", "0.01"),)): 4.0,
        ("altinn_receiver_ack_seconds_bucket", (("le", "+Inf"),)): 5.0,
        ("altinn_receiver_ack_seconds_count", ()): 5.0,
        ("altinn_receiver_ack_seconds_sum", ()): 0.03,
        ("altinn_receiver_dispatch_running", ()): 3.0,
    }
    assert merged.count("# TYPE altinn_receiver_inbox_events gauge") == 1


def test_altinn_validates_a_subscription_serve_registers_at_start_without_a_retry(tmp_path: Path) -> None:
    """The worker process may register the subscription before the webhook process serves: Altinn's validation push
    must wait for it (the port listens before either starts), not be refused and retried seconds later (time_scale
    1: the simulator's first retry of a validation push comes after a second or more)."""
    with running_simulator(SimSettings(seed_correspondences=0)) as sim:
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        identity = register_identity(sim, tmp_path, org=SENDER_ORG, scopes=SCOPES)
        setup = ReceiverSetup(sim.url, identity, tmp_path / "receiver.db", [SubscriptionConfig(RESOURCE)])
        serve = ServeProcess(tmp_path)
        setup.write(serve.config)
        serve.port = setup.port
        with serve:
            wait_until(lambda: subscription_state(serve) == "validated", timeout=10,
                       message="Altinn to validate the subscription at its first push")  # fmt: skip


def subscription_state(serve: ServeProcess) -> str:
    try:
        body = httpx.get(f"{serve.url}/readyz", timeout=5).json()
    except httpx.HTTPError:
        return ""
    return str(body.get("services", {}).get("subscriptions", {}).get("state", ""))
