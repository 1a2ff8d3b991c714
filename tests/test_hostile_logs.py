"""A log line holding a lone surrogate is written escaped, and no line buffered with it is lost. One such line made
the log writer drop its whole buffer: 40 access lines for about 215 requests."""

from __future__ import annotations

import io
import json
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.ingest_support import ServeProcess, compact, new_event, push, webhook
from tests.logs_support import buffered_logger

SURROGATE = "\ud800"


def test_every_access_line_is_written_beside_lines_holding_a_lone_surrogate(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    good = [compact(new_event()) for _ in range(200)]
    # Valid JSON whose attribute name is a lone surrogate: refused, and the access line names that attribute.
    hostile = [compact({**new_event(), SURROGATE: "x"}) for _ in range(15)]
    bodies = good[:100] + hostile + good[100:]
    with serve, httpx.Client(timeout=10) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda body: push(client, webhook(serve.url), body).status_code, bodies))
        assert statuses.count(200) == len(good) and statuses.count(400) == len(hostile)
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    lines = serve.log_lines()  # every line is whole JSON
    access = [line for line in lines if line["logger"] == "receiver.access" and line["path"] == "/events"]
    assert len(access) == len(bodies)
    refused = [line for line in access if line["http_status"] == 400]
    assert [line["attribute"] for line in refused] == [SURROGATE] * len(hostile)  # escaped in the file, exact in JSON
    assert "\\ud800" in serve.log_path.read_text(encoding="utf-8")


def test_the_handler_escapes_a_line_its_stream_cannot_encode_and_keeps_the_others(tmp_path: Path) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    with buffered_logger("tests.hostile_logs", stream, flush_interval=60) as (logger, handler):
        logger.info("before")
        logger.info("bad", extra={"value": f"a{SURROGATE}b", "text": "æøå \U0001f600"})
        logger.info("after")
        handler.flush()
        written = [json.loads(line) for line in raw.getvalue().decode("utf-8").splitlines()]
    assert [line["msg"] for line in written] == ["before", "bad", "after"]
    assert written[1]["value"] == f"a{SURROGATE}b" and written[1]["text"] == "æøå \U0001f600"
