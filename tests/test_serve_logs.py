"""`serve`'s log lines are buffered and written in the background: they still arrive while it runs, in order, whole,
warnings at once, and every one of them by the time it exits."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from altinn_sim import SimSettings, running_simulator
from receiver.observability.logs import emit_json_line
from receiver.scopes import READ_SCOPE
from tests.dispatch_support import RECIPIENT_ORG, RESOURCE, recipient_setup, wait_settled
from tests.ingest_support import ServeProcess, new_event, push, webhook
from tests.logs_support import buffered_logger
from tests.support import complete_lines, wait_until


def test_access_lines_arrive_while_serving_and_every_line_is_written_whole_by_exit(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    events = [new_event() for _ in range(30)]
    with serve, httpx.Client(timeout=10) as client:
        assert all(push(client, webhook(serve.url), event).status_code == 200 for event in events)

        def logged_ids() -> set[str]:
            return {
                line.get("event_id", "")
                for line in serve.log_lines()
                if line["logger"] == "receiver.access" and line["path"] == "/events"
            }

        wait_until(lambda: {event["id"] for event in events} <= logged_ids(), timeout=5, message="the access lines")
        assert serve.process is not None and serve.process.poll() is None
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    lines = serve.log_lines()  # each line parses: none was cut or interleaved
    access = [line for line in lines if line["logger"] == "receiver.access" and line["path"] == "/events"]
    assert [line["event_id"] for line in access] == [event["id"] for event in events]
    assert any(line["logger"] == "receiver.app" and line["msg"] == "stopped" for line in lines)  # logged at exit


def test_the_handler_writes_warnings_at_once_infos_within_its_interval_and_the_rest_on_close(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    with (
        path.open("w", encoding="utf-8") as stream,
        buffered_logger("tests.buffered", stream, flush_interval=0.05) as (logger, handler),
    ):

        def messages() -> list[str]:
            return [json.loads(line)["msg"] for line in complete_lines(path)]

        logger.info("first")
        emit_json_line(logger, json.dumps({"msg": "preformatted"}))
        wait_until(lambda: messages() == ["first", "preformatted"], timeout=5, message="the periodic write")
        handler.flush_interval = 60.0
        logger.info("queued")
        logger.warning("urgent")
        assert messages() == ["first", "preformatted", "queued", "urgent"]
        logger.info("last")
        handler.close()
        assert messages() == ["first", "preformatted", "queued", "urgent", "last"]


def test_log_fields_as_an_operator_queries_them_and_the_event_id_reaches_the_altinn_clients_lines(
    tmp_path: Path,
) -> None:
    """serve against the simulator at log level debug: one correspondence pushed, fetched and stored."""
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path, extra='[log]\nlevel = "debug"\n')
        serve = ServeProcess(tmp_path)  # its log files and process handling, with the recipient's config
        setup.write(serve.config)
        serve.port = setup.port
        with serve:
            wait_until(
                lambda: (
                    httpx.get(f"{serve.url}/readyz").json()["services"]["subscriptions"].get("state") == "validated"
                ),
                message="the subscription to be validated",
            )
            sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title="Loggført")
            [event_id] = wait_settled(setup.store, 1)
            serve.signal(signal.SIGTERM)
            assert serve.wait() == 0
    lines = serve.log_lines()
    assert not [line for line in lines if "color_message" in line], "uvicorn's coloured copy of its message"
    [access] = [line for line in lines if line["logger"] == "receiver.access" and line.get("event_id") == event_id]
    assert (access["http_status"], access["outcome"]) == (200, "stored") and "status" not in access
    [done] = [line for line in lines if line["logger"] == "receiver.dispatch" and line.get("event_id") == event_id]
    assert (done["msg"], done["outcome"]) == ("event done", "done") and "status" not in done
    read_token = [line for line in lines if line["msg"] == "altinn token obtained" and line["scopes"] == READ_SCOPE]
    assert [line["event_id"] for line in read_token] == [event_id], "the token was asked for by the handler"
    assert all(isinstance(line["http_status"], int) for line in lines if "http_status" in line)
