"""`forward_amqp` and `forward_nats` end to end, each test against both brokers on this machine (RabbitMQ and NATS
JetStream): `altinn-receiver serve` fetches each event's correspondence from the simulator and publishes it, and
what arrives is read as a consumer reads it. Structured and binary CloudEvents as the AMQP and NATS bindings have
them, on the queue or subject the template names, once each; a broker out of reach retried until it answers; the
events of a correspondence in order under concurrency; a graceful shutdown with publishes in flight; credentials
kept out of every log line and error."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from altinn_sim import running_simulator
from altinn_sim.testing import Webhook
from tests.broker_support import (
    SIM,
    Delivered,
    Forwarding,
    NatsTarget,
    Target,
    TcpRelay,
    amqp_target,
    amqp_url,
    arrived,
    correspondence_event,
    nats_target,
    nats_url,
)
from tests.dispatch_support import metric_value, query
from tests.support import wait_until

BROKERS = ["amqp", "nats"]
TARGETS: dict[str, Callable[[], AbstractContextManager[Target]]] = {"amqp": amqp_target, "nats": nats_target}
ATTRIBUTES = ("id", "source", "type", "subject", "time", "resource", "resourceinstance")
SECRET = "broker-password-that-must-stay-secret"


def check_structured(message: Delivered, event: Mapping[str, Any]) -> None:
    assert message.content_type == "application/cloudevents+json"
    body = message.json()
    assert {name: body[name] for name in ATTRIBUTES} == {name: event[name] for name in ATTRIBUTES}
    assert (body["specversion"], body["datacontenttype"]) == ("1.0", "application/json")
    assert body["data"]["correspondenceId"] == event["resourceinstance"]


def check_binary(message: Delivered, event: Mapping[str, Any], broker: str) -> None:
    """The AMQP binding's `cloudEvents_*` application properties (headers in 0-9-1) with `content_type`, or the NATS
    binding's `ce-*` headers with `ce-datacontenttype`; `data` alone as the body."""
    prefix = {"amqp": "cloudEvents_", "nats": "ce-"}[broker]
    attributes = {name: message.headers[prefix + name] for name in ATTRIBUTES}
    assert attributes == {name: event[name] for name in ATTRIBUTES}
    assert message.headers[prefix + "specversion"] == "1.0"
    if broker == "amqp":
        assert message.content_type == "application/json"
    else:
        assert message.content_type is None and message.headers["ce-datacontenttype"] == "application/json"
    assert message.json()["correspondenceId"] == event["resourceinstance"]


@pytest.mark.parametrize("broker", BROKERS)
def test_each_event_arrives_once_as_a_cloudevent_in_both_modes_where_the_template_says(
    tmp_path: Path, broker: str
) -> None:
    with running_simulator(SIM) as sim, TARGETS[broker]() as structured, TARGETS[broker]() as binary:
        handlers = {"as_structured": structured.options(), "as_binary": binary.options(mode="binary")}
        with Forwarding(sim, tmp_path, handlers) as forwarding:
            first, second = forwarding.correspondences(2)
            events = [correspondence_event(cid, second=n) for n, cid in enumerate([first, second, first, second])]
            forwarding.push(*events)
            forwarding.wait_done([event["id"] for event in events])
            counted = {
                (name, outcome): metric_value(
                    forwarding.serve.url, "altinn_receiver_forward_total", handler=name, outcome=outcome
                )
                for name in handlers
                for outcome in ("done", "retry")
            }
        as_structured, as_binary = arrived(structured, 4), arrived(binary, 4)
    assert counted == {("as_structured", "done"): 4, ("as_structured", "retry"): 0,
                       ("as_binary", "done"): 4, ("as_binary", "retry"): 0}  # fmt: skip
    for delivered, target, check in ((as_structured, structured, "structured"), (as_binary, binary, "binary")):
        assert sorted(message.id for message in delivered) == sorted(event["id"] for event in events), "once each"
        for event in events:
            [message] = [message for message in delivered if message.id == event["id"]]
            assert message.address == target.address_of(event)
            if check == "structured":
                check_structured(message, event)
            else:
                check_binary(message, event, broker)
            if broker == "amqp":
                assert message.persistent, "delivery mode 2"


def inbox_row(forwarding: Forwarding, event_id: str) -> Mapping[str, Any]:
    [row] = query(forwarding.store, "SELECT status, attempts, last_error FROM inbox WHERE id = ?", event_id)
    return dict(row)


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_out_of_reach_is_retried_until_it_answers_and_the_event_is_then_delivered_once(
    tmp_path: Path, broker: str
) -> None:
    """Through a relay that nobody listens on at first, and that later cuts the connection: the next event opens a
    new one. The NATS URL carries credentials, which the server (without authentication) ignores and which no log
    line or error may show."""
    with running_simulator(SIM) as sim, TARGETS[broker]() as target, TcpRelay(target.broker_port) as relay:
        options = target.options(relay.port)
        if isinstance(target, NatsTarget):
            options["url"] = nats_url(relay.port, credentials=f"altinn:{SECRET}")
        with Forwarding(sim, tmp_path, {"to_broker": options}) as forwarding:
            [correspondence] = forwarding.correspondences(1)
            event = correspondence_event(correspondence)
            forwarding.push(event)
            retrying = wait_until(
                lambda: (
                    (row := inbox_row(forwarding, event["id"]))["attempts"] >= 2 and row["status"] == "retrying" and row
                ),
                message="the event to be retried",
            )
            relay.start()
            forwarding.wait_done([event["id"]])
            relay.stop()
            relay.start()
            after_loss = correspondence_event(correspondence, second=1)
            forwarding.push(after_loss)
            forwarding.wait_done([after_loss["id"]])
        delivered = arrived(target, 2)
    assert [message.id for message in delivered] == [event["id"], after_loss["id"]]
    assert f"127.0.0.1:{relay.port}" in retrying["last_error"] and "cannot connect" in retrying["last_error"]
    assert SECRET not in retrying["last_error"] and SECRET not in forwarding.serve.log_path.read_text()
    assert SECRET not in forwarding.serve.err_path.read_text()


def test_credentials_the_broker_refuses_are_retried_and_reach_no_log_line_or_error(tmp_path: Path) -> None:
    with running_simulator(SIM) as sim, amqp_target() as target:
        options = {**target.options(), "url": amqp_url(password=SECRET)}
        with Forwarding(sim, tmp_path, {"to_broker": options}) as forwarding:
            [correspondence] = forwarding.correspondences(1)
            event = correspondence_event(correspondence)
            forwarding.push(event)
            row = wait_until(
                lambda: (row := inbox_row(forwarding, event["id"]))["status"] == "retrying" and row,
                message="the event to be retried",
            )
    assert row["last_error"] == "to_broker: amqp://127.0.0.1:5672/: the broker refused the credentials in the URL"
    assert SECRET not in forwarding.serve.log_path.read_text() + forwarding.serve.err_path.read_text()
    assert "the broker refused the credentials" in forwarding.serve.log_path.read_text(), "said at start"


@pytest.mark.parametrize("broker", BROKERS)
def test_the_events_of_a_correspondence_arrive_in_time_order_under_concurrency(tmp_path: Path, broker: str) -> None:
    """Each correspondence's first event is held up at the simulator (its fetch, the first three calls) while the rest
    arrive out of order: the dispatcher runs them by `time`, and the broker gets them in that order. AMQP through
    the default exchange, all on one queue."""
    target_of = (lambda: amqp_target(default_exchange=True)) if broker == "amqp" else nats_target
    with running_simulator(SIM) as sim, target_of() as target:
        with Forwarding(sim, tmp_path, {"to_broker": target.options()}, dispatch={"concurrency": 8}) as forwarding:
            timelines = {cid: [correspondence_event(cid, second=s) for s in range(5)]
                         for cid in forwarding.correspondences(3)}  # fmt: skip
            sim.admin.put("/faults", json={"path": "/correspondence/api/v1/*", "latency": "1500ms", "count": 3})
            forwarding.push(*(events[0] for events in timelines.values()))
            pushers = [
                threading.Thread(target=forwarding.push, args=(*reversed(events[1:]),)) for events in timelines.values()
            ]
            for pusher in pushers:
                pusher.start()
            for pusher in pushers:
                pusher.join()
            assert "done" not in forwarding.statuses().values(), "every event is in before the first is done"
            forwarding.wait_done([event["id"] for events in timelines.values() for event in events])
        delivered = arrived(target, 15)
    for correspondence, events in timelines.items():
        received = [message.id for message in delivered if message.json()["resourceinstance"] == correspondence]
        assert received == [event["id"] for event in events]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_graceful_shutdown_with_publishes_in_flight_loses_nothing(tmp_path: Path, broker: str) -> None:
    """A slow link keeps publishes waiting for their confirm or ack when SIGTERM comes: those finish and are done,
    the claims of the others are given back, and the next start delivers the rest. Every event arrives once."""
    with running_simulator(SIM) as sim, TARGETS[broker]() as target, TcpRelay(target.broker_port, 0.05) as relay:
        relay.start()
        forwarding = Forwarding(sim, tmp_path, {"to_broker": target.options(relay.port)}, dispatch={"concurrency": 4})
        with forwarding:
            events = [correspondence_event(cid) for cid in forwarding.correspondences(8)]
            forwarding.push(*events)
            wait_until(lambda: "done" in (now := forwarding.statuses()).values() and "processing" in now.values(),
                       message="publishes under way")  # fmt: skip
            in_flight = {event_id for event_id, status in forwarding.statuses().items() if status == "processing"}
            forwarding.serve.signal(signal.SIGTERM)
            assert forwarding.serve.wait(30) == 0
        stopped = forwarding.statuses()
        done_before = {event_id for event_id, status in stopped.items() if status == "done"}
        delivered_before = Counter(message.id for message in target.delivered())
        with forwarding:
            forwarding.wait_done([event["id"] for event in events])
        delivered = Counter(message.id for message in arrived(target, len(events)))
    assert set(stopped.values()) <= {"done", "pending", "retrying"}, stopped
    assert in_flight & done_before, "a publish in flight at SIGTERM finished during the shutdown"
    assert {event_id: delivered_before[event_id] for event_id in done_before} == dict.fromkeys(done_before, 1)
    assert delivered == Counter(event["id"] for event in events), "every event, once"
    closing = [line for line in forwarding.serve.log_lines() if line.get("msg") == "a handler failed to close"]
    assert closing == []


def test_the_message_is_forward_https_envelope_with_local_paths_for_downloaded_attachments(tmp_path: Path) -> None:
    """A recipient's pipeline fetches, downloads and forwards to an HTTP endpoint and to RabbitMQ: the two bodies are
    the same CloudEvent, whose attachments name the files on disk."""
    with running_simulator(SIM) as sim, amqp_target() as target, Webhook() as endpoint:
        handlers = {"to_http": {"use": "forward_http", "url": f"{endpoint.url}/in"}, "to_rabbit": target.options()}
        with Forwarding(sim, tmp_path, handlers, role="recipient") as forwarding:
            [correspondence] = forwarding.correspondences(1, attachments=2)
            event = correspondence_event(correspondence, type="no.altinn.correspondence.correspondencepublished")
            forwarding.push(event)
            forwarding.wait_done([event["id"]])
            counted = [metric_value(forwarding.serve.url, "altinn_receiver_forward_total", handler=name,
                                    outcome="done") for name in handlers]  # fmt: skip
        [posted] = endpoint.received
        [published] = arrived(target, 1)
    assert counted == [1, 1]
    assert json.loads(posted.body) == published.json()
    attachments = published.json()["data"]["content"]["attachments"]
    assert len(attachments) == 2
    for attachment in attachments:
        local = Path(attachment["localPath"])
        assert local.is_file() and local.parent == forwarding.files / correspondence / attachment["id"]
