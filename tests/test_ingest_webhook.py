"""The webhook's rules, each against a real receiver over loopback HTTP with a real SQLite file."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from receiver.config import Config
from receiver.server_thread import ServerThread
from tests.ingest_support import (
    OLD_SECRET,
    PUBLISHED,
    SECRET,
    compact,
    count,
    inbox_rows,
    make_config,
    new_event,
    push,
    running_app,
    sample,
    webhook,
)


class Receiver:
    def __init__(self, config: Config, server: ServerThread) -> None:
        self.config = config
        self.store = config.store.path
        self.server = server
        self.url = webhook(server.url)
        self.client = httpx.Client(timeout=10)

    def push(self, body: bytes | dict[str, object], **headers: str) -> httpx.Response:
        return push(self.client, self.url, body, **headers)

    def row(self, event_id: str) -> dict[str, object] | None:
        rows = inbox_rows(self.store, "id = ?", event_id)
        return dict(rows[0]) if rows else None


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    config = make_config(tmp_path_factory.mktemp("webhook"), max_body_bytes=4096)
    with running_app(config) as server:
        yield Receiver(config, server)


# --- what Altinn sends is stored as sent ---


@pytest.mark.parametrize("name", ["correspondence-published.json", "correspondence-receiverneverread.json"])
def test_samples_are_stored_as_sent_with_status_pending(receiver: Receiver, name: str) -> None:
    body = sample(name)
    event = json.loads(body)
    response = receiver.push(body)
    assert response.status_code == 200, response.text
    row = receiver.row(event["id"])
    assert row is not None
    assert row["raw"] == body.decode()
    assert (row["type"], row["source"], row["subject"]) == (event["type"], event["source"], event["subject"])
    assert (row["resource"], row["resourceinstance"], row["time"]) == (
        event["resource"],
        event["resourceinstance"],
        event["time"],
    )
    assert (row["channel"], row["status"], row["attempts"]) == ("push", "pending", 0)
    assert str(row["received_at"]).endswith("Z")


def test_seven_fractional_digits_unknown_extensions_and_compact_bytes_are_accepted(receiver: Receiver) -> None:
    event = new_event(time="2024-04-19T07:22:19.4380391Z", atta="If the wolf eats your grandma", attb=2)
    body = compact(event)
    assert b" " not in body.replace(b"If the wolf eats your grandma", b"")
    assert receiver.push(body).status_code == 200
    row = receiver.row(event["id"])
    assert row is not None
    assert row["time"] == "2024-04-19T07:22:19.4380391Z"
    assert json.loads(str(row["raw"]))["atta"] == "If the wolf eats your grandma"


def test_missing_time_subject_and_data_are_accepted_and_time_is_not_invented(receiver: Receiver) -> None:
    event = new_event(time=None, subject=None)
    assert receiver.push(event).status_code == 200
    row = receiver.row(event["id"])
    assert row is not None
    assert (row["time"], row["subject"]) == ("", "")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/cloudevents+json; charset=UTF-8",
        "APPLICATION/JSON",
    ],
)
def test_structured_content_types_are_accepted(receiver: Receiver, content_type: str) -> None:
    event = new_event()
    assert receiver.push(event, **{"content-type": content_type}).status_code == 200
    assert receiver.row(event["id"]) is not None


def test_binary_mode_with_ce_headers_is_stored_as_structured_json(receiver: Receiver) -> None:
    event_id = "binary-" + new_event()["id"]
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "ce-type": PUBLISHED,
        "ce-time": "2024-04-19T07:22:19.4380391Z",
        "ce-resource": "urn:altinn:resource:nabovarsel",
        "ce-subject": "urn%3Aaltinn%3Aorganization%3Aidentifier-no%3A314249879",
        "content-type": "text/plain",
    }
    response = receiver.client.post(receiver.url, content=b"hello", headers=headers)
    assert response.status_code == 200, response.text
    row = receiver.row(event_id)
    assert row is not None
    assert row["subject"] == "urn:altinn:organization:identifier-no:314249879"
    raw = json.loads(str(row["raw"]))
    assert raw["data"] == "hello"
    assert raw["datacontenttype"] == "text/plain"
    assert raw["time"] == "2024-04-19T07:22:19.4380391Z"


def test_a_repeated_id_is_acknowledged_and_stored_once(receiver: Receiver) -> None:
    event = new_event()
    first = receiver.push(event)
    again = receiver.push({**event, "subject": "urn:altinn:organization:identifier-no:999999999"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["status"] == "duplicate"
    rows = inbox_rows(receiver.store, "id = ?", event["id"])
    assert len(rows) == 1
    assert rows[0]["subject"] == event["subject"]


def test_validation_event_is_recorded_and_never_enters_the_inbox(receiver: Receiver) -> None:
    body = sample("validate-subscription.json")
    before = count(receiver.store)
    assert receiver.push(body).status_code == 200
    assert count(receiver.store) == before
    event = json.loads(body)
    assert receiver.row(event["id"]) is None
    with sqlite3.connect(receiver.store) as conn:
        found = conn.execute(
            "SELECT subscription_id, source, received_at FROM validations WHERE event_id = ?", (event["id"],)
        ).fetchone()
    assert found is not None
    assert found[0] == "52107", "the subscription id is the last segment of the source path"
    assert found[1] == event["source"]


def test_validation_event_without_a_subscription_path_records_an_empty_subscription_id(receiver: Receiver) -> None:
    event = new_event(type="platform.events.validatesubscription", source="https://example.test/elsewhere")
    assert receiver.push(event).status_code == 200
    with sqlite3.connect(receiver.store) as conn:
        found = conn.execute("SELECT subscription_id FROM validations WHERE event_id = ?", (event["id"],)).fetchone()
    assert found == ("",)


# --- what is refused, and that nothing is stored then ---


@pytest.mark.parametrize(
    ("body", "attribute"),
    [
        (compact([new_event()]), ""),
        (b"not json", ""),
        (b'{"specversion": "1.0", "id": NaN}', ""),
        (b"[" * 2000 + b"]" * 2000, ""),
        ('{"x": "\u00e6"}'.encode("latin-1"), ""),
        (compact(new_event(specversion="0.3")), "specversion"),
        (compact(new_event(specversion=None)), "specversion"),
        (compact(new_event(id=None)), "id"),
        (compact(new_event(id="")), "id"),
        (compact(new_event(id=17)), "id"),
        (compact(new_event(type=["a"])), "type"),
        (compact(new_event(source="")), "source"),
        (compact(new_event(subject="")), "subject"),
        (compact(new_event(time="yesterday")), "time"),
        (compact(new_event(time="2024-04-19T07:22:19")), "time"),
        (compact(new_event(time="2024-02-30T07:22:19Z")), "time"),
        (compact(new_event(resource=5)), "resource"),
        (compact(new_event(extra={"nested": True})), "extra"),
        (compact(new_event(Bad_Name="x")), "Bad_Name"),
        (compact(new_event(data_base64="***")), "data_base64"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_invalid_events_get_400_naming_the_attribute_and_store_nothing(
    receiver: Receiver, body: bytes, attribute: str
) -> None:
    before = count(receiver.store)
    response = receiver.push(body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["attribute"] == attribute
    assert problem["status"] == 400
    if attribute:
        assert attribute in problem["detail"]
    assert count(receiver.store) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/cloudevents-batch+json", ""])
def test_other_content_types_get_415(receiver: Receiver, content_type: str) -> None:
    event = new_event()
    response = receiver.client.post(receiver.url, content=compact(event), headers={"content-type": content_type})
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert receiver.row(event["id"]) is None


@pytest.mark.parametrize("code", [None, "", "wrong", OLD_SECRET + "x"])
def test_wrong_or_missing_code_gets_401_without_detail(receiver: Receiver, code: str | None) -> None:
    event = new_event()
    response = push(receiver.client, webhook(receiver.server.url, code), event)
    assert response.status_code == 401
    assert response.content == b""
    assert receiver.row(event["id"]) is None


@pytest.mark.parametrize(
    "query",
    [
        f"x=1&code={SECRET}&y=2",
        "code=" + "".join(f"%{byte:02x}" for byte in SECRET.encode()),
        f"code={SECRET.replace('-', '%2D')}&code=second-is-ignored",
    ],
)
def test_the_code_is_found_among_other_fields_and_percent_decoded(receiver: Receiver, query: str) -> None:
    event = new_event()
    assert push(receiver.client, f"{receiver.server.url}/events?{query}", event).status_code == 200
    assert receiver.row(event["id"]) is not None


@pytest.mark.parametrize("query", ["code", f"code=&code={SECRET}", f"codex={SECRET}", f"code={SECRET}+"])
def test_only_the_first_code_field_counts_exactly(receiver: Receiver, query: str) -> None:
    event = new_event()
    assert push(receiver.client, f"{receiver.server.url}/events?{query}", event).status_code == 401
    assert receiver.row(event["id"]) is None


def test_the_previous_secret_is_still_accepted(receiver: Receiver) -> None:
    event = new_event()
    assert push(receiver.client, webhook(receiver.server.url, OLD_SECRET), event).status_code == 200


def test_other_methods_get_405(receiver: Receiver) -> None:
    response = receiver.client.get(receiver.url)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_a_body_over_the_limit_by_content_length_gets_413(receiver: Receiver) -> None:
    event = new_event(padding="x" * 5000)
    response = receiver.push(event)
    assert response.status_code == 413
    assert "4096" in response.json()["detail"]
    assert receiver.row(event["id"]) is None


def send_huge_chunked_body(receiver: Receiver) -> tuple[bytes, int, float, bool]:
    """POST a chunked body of up to 64 MiB, reading while sending: what came back, the bytes sent, how long it took,
    and whether the connection was reset before the answer was read."""
    host, port = receiver.server.host, receiver.server.port
    query = receiver.url.split("?", 1)[1]
    chunk = b"x" * 1024
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            f"POST /events?{query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        started = time.monotonic()
        sent = 0
        response = b""
        sock.setblocking(False)
        # Keep sending (up to 64 MiB) until the server answers: it must not wait for the end of the body.
        while sent < 64 * 1024 * 1024 and b"\r\n\r\n" not in response:
            try:
                sock.sendall(b"400\r\n" + chunk + b"\r\n")
                sent += len(chunk)
            except (BlockingIOError, BrokenPipeError):
                pass
            except ConnectionResetError:
                return response, sent, time.monotonic() - started, True
            try:
                response += sock.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                return response, sent, time.monotonic() - started, True
        return response, sent, time.monotonic() - started, False


def test_a_huge_chunked_body_gets_413_promptly_without_being_read(receiver: Receiver) -> None:
    # The server closes with body bytes unread, so its kernel may answer our next bytes with a reset, and a reset
    # drops the 413 from our receive buffer unread. That is TCP, not the receiver: try again, a few times at most.
    # What we could send before the answer is the body limit (4 KiB here) plus what the loopback's socket buffers took
    # in meanwhile, which Linux grows by the MiB when the server is slow to answer under load (1.5 MiB seen): a
    # quarter of the 64 MiB that a server reading the whole body would take bounds it.
    for _ in range(5):
        response, sent, elapsed, reset = send_huge_chunked_body(receiver)
        assert sent < 16 * 1024 * 1024
        assert elapsed < 5
        if not (reset and not response):
            break
    assert response.startswith(b"HTTP/1.1 413"), response[:200]


# --- health, readiness, metrics ---


def test_healthz_and_readyz_answer_when_the_store_is_writable(receiver: Receiver) -> None:
    assert receiver.client.get(f"{receiver.server.url}/healthz").json() == {"status": "ok"}
    ready = receiver.client.get(f"{receiver.server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "store": "writable", "draining": False, "services": {}}


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_count_received_duplicates_rejected_and_inbox_depth(receiver: Receiver) -> None:
    def scrape() -> str:
        return receiver.client.get(f"{receiver.server.url}/metrics").text

    before = scrape()
    event = new_event()
    receiver.push(event)
    receiver.push(event)
    receiver.push(b"[]")
    push(receiver.client, webhook(receiver.server.url, "nope"), event)
    after = scrape()
    for name, delta in [
        ('altinn_receiver_events_received_total{channel="push"}', 1),
        ("altinn_receiver_events_duplicate_total", 1),
        ('altinn_receiver_events_rejected_total{reason="invalid"}', 1),
        ('altinn_receiver_events_rejected_total{reason="unauthorized"}', 1),
        ('altinn_receiver_inbox_events{status="pending"}', 1),
        ("altinn_receiver_ack_seconds_count", 2),
    ]:
        assert metric(after, name) - metric(before, name) == delta, name
    assert metric(after, 'altinn_receiver_inbox_events{status="pending"}') == count(receiver.store)


def test_an_app_serves_pushes_from_many_clients_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_app(config) as server, httpx.Client(timeout=10) as client:
        events = [new_event() for _ in range(200)]
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda event: push(client, webhook(server.url), event).status_code, events))
        assert codes == [200] * 200
    ids = {row["id"] for row in inbox_rows(config.store.path)}
    assert ids == {event["id"] for event in events}


def test_concurrent_pushes_of_the_same_ids_store_each_once_and_say_stored_once(tmp_path: Path) -> None:
    """Copies land in the same commit batch as the first one, in later ones, and beside ids stored long before."""
    config = make_config(tmp_path)
    earlier = [new_event() for _ in range(20)]
    fresh = [new_event() for _ in range(40)]
    pushes = [event for event in fresh for _ in range(3)] + [event for event in earlier for _ in range(2)]
    random.Random(7).shuffle(pushes)
    with running_app(config) as server, httpx.Client(timeout=10) as client, ThreadPoolExecutor(16) as pool:
        assert [push(client, webhook(server.url), event).json()["status"] for event in earlier] == ["stored"] * 20
        answers = list(pool.map(lambda event: push(client, webhook(server.url), event), pushes))
    assert [answer.status_code for answer in answers] == [200] * len(pushes)
    stored = [event["id"] for event, answer in zip(pushes, answers, strict=True) if answer.json()["status"] == "stored"]
    assert sorted(stored) == sorted(event["id"] for event in fresh)
    assert count(config.store.path) == len(earlier) + len(fresh)
