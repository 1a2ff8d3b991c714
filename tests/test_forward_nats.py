"""What only `forward_nats` does, against the machine's NATS JetStream through `altinn-receiver serve`: the stream
stores a repeated publish of one event once (`Nats-Msg-Id`), a duplicate window shorter than `[dispatch]
backoff_cap` is warned about at start, no stream for the subject is retried with that reason, and a subject the
template makes invalid is permanent."""

from __future__ import annotations

import uuid
from pathlib import Path

from altinn_sim import running_simulator
from tests.broker_support import SIM, Forwarding, correspondence_event, nats_target, nats_url
from tests.dispatch_support import query
from tests.ingest_support import run_cli
from tests.support import wait_until


def test_a_repeated_publish_of_one_event_is_stored_once_and_a_short_duplicate_window_is_warned_about(
    tmp_path: Path,
) -> None:
    with running_simulator(SIM) as sim, nats_target(duplicate_window=30) as stream:
        options = stream.options()
        with Forwarding(sim, tmp_path, {"to_nats": options}, dispatch={"backoff_cap": "1m"}) as forwarding:
            [correspondence] = forwarding.correspondences(1)
            event = correspondence_event(correspondence)
            forwarding.push(event)
            forwarding.wait_done([event["id"]])
            replayed = run_cli("events", "replay", event["id"], "--yes", "--config", str(forwarding.serve.config))
            assert replayed.returncode == 0, replayed.stderr

            def published() -> list[dict[str, object]]:
                lines = forwarding.serve.log_lines()
                return [line for line in lines if line.get("msg") == "published" and line["event_id"] == event["id"]]

            twice = wait_until(lambda: len(found := published()) == 2 and found, message="a second publish")
            forwarding.wait_done([event["id"]])
            warnings = [line for line in forwarding.serve.log_lines() if "duplicate_window" in line["msg"]]
        stored = stream.delivered()
    assert [message.id for message in stored] == [event["id"]], "stored once"
    assert [line["duplicate"] for line in twice] == [False, True]
    assert [(w["stream"], w["duplicate_window"], w["backoff_cap"]) for w in warnings] == [(stream.stream, "30s", "60s")]


def test_no_stream_for_the_subject_is_retried_and_a_subject_the_template_makes_invalid_is_dead(tmp_path: Path) -> None:
    nowhere = f"nowhere-{uuid.uuid4().hex[:12]}"
    options = {"use": "forward_nats", "url": nats_url(), "subject": nowhere + ".{subject}", "timeout": "2s"}
    with running_simulator(SIM) as sim, Forwarding(sim, tmp_path, {"to_nats": options}) as forwarding:
        first, second = forwarding.correspondences(2)
        unrouted, invalid = correspondence_event(first), correspondence_event(second, subject=None)
        forwarding.push(unrouted, invalid)

        def outcomes() -> dict[str, tuple[str, str]] | None:
            rows = query(forwarding.store, "SELECT id, status, attempts, last_error FROM inbox")
            found = {row["id"]: (row["status"], row["last_error"]) for row in rows}
            settled = found.get(invalid["id"], ("",))[0] == "dead" and found.get(unrouted["id"], ("",))[0] == "retrying"
            return found if settled else None

        found = wait_until(outcomes, message="one event retrying, the other dead")
    subject = f"{nowhere}.{unrouted['subject']}"
    assert (
        found[unrouted["id"]][1]
        == f"to_nats: no JetStream stream takes subject {subject!r}: add it to a stream's subjects"
    )
    assert found[invalid["id"]][1].startswith(
        f"to_nats: subject '{nowhere}.' (from '{nowhere}.{{subject}}') is not one"
    )
