"""Hostile pushes at the door: text that cannot be stored and times that cannot be read get a 400 naming the
attribute, nothing of them is stored, and the valid pushes beside them are all acknowledged and stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given

from handlers.store import normalised_time
from receiver.server_thread import ServerThread
from receiver.web.cloudevent import InvalidEvent, to_new_event
from tests.hostile_strategies import RFC3339_LIKE
from tests.ingest_support import compact, count, inbox_rows, make_config, new_event, push, running_app, webhook

SURROGATE = "\ud800"
NUL = "\u0000"


class Door:
    def __init__(self, server: ServerThread, store: Path) -> None:
        self.url = webhook(server.url)
        self.store = store
        self.client = httpx.Client(timeout=10)

    def push(self, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
        return push(self.client, self.url, body, **headers)

    def refused(self, body: bytes | dict[str, Any], attribute: str, **headers: str) -> str:
        """Push `body`; it must get a 400 naming `attribute` and store nothing. Returns the problem's detail."""
        before = count(self.store)
        response = self.push(body, **headers)
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["attribute"] == attribute, problem
        assert attribute in problem["detail"]
        assert count(self.store) == before
        detail: str = problem["detail"]
        return detail


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    config = make_config(tmp_path_factory.mktemp("door"))
    with running_app(config) as server:
        yield Door(server, config.store.path)


@pytest.mark.parametrize("attribute", ["id", "source", "type", "subject", "resource", "resourceinstance"])
@pytest.mark.parametrize("char", [SURROGATE, "\udfff", NUL], ids=["high-surrogate", "low-surrogate", "nul"])
def test_unstorable_text_in_an_attribute_is_refused_naming_it(door: Door, attribute: str, char: str) -> None:
    detail = door.refused(new_event(**{attribute: f"x{char}y"}), attribute)
    assert ("NUL" if char == NUL else "lone surrogate") in detail


def test_unstorable_text_in_an_extension_attribute_is_refused(door: Door) -> None:
    door.refused(new_event(alternativesubject=f"/person/{SURROGATE}"), "alternativesubject")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (SURROGATE, "data"),
        ({"a": [1, {"b": f"ok{SURROGATE}"}]}, "data.a[1].b"),
        ({"deep": [[[[[[{"x": NUL}]]]]]]}, "data.deep[0][0][0][0][0][0].x"),
        ({f"key{SURROGATE}": 1}, "data"),
        ({"list": ["fine", "\udc80"]}, "data.list[1]"),
    ],
)
def test_unstorable_text_anywhere_in_data_keys_too_is_refused_saying_where(door: Door, data: Any, where: str) -> None:
    detail = door.refused(new_event(data=data), "data")
    assert where in detail


def test_binary_mode_refuses_a_percent_encoded_nul_in_a_header(door: Door) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "abc%00def", "ce-source": "https://x", "ce-type": "t"}
    door.refused(b"", "id", **headers)


def test_binary_mode_refuses_a_surrogate_in_a_json_body(door: Door) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "binary-surrogate", "ce-source": "https://x", "ce-type": "t"}
    door.refused(b'{"a": "\\ud800"}', "data", **headers, **{"content-type": "application/json"})


def test_binary_mode_keeps_a_text_body_with_nul_bytes_as_base64(door: Door) -> None:
    event_id = "binary-nul-body"
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "https://x", "ce-type": "t"}
    response = door.push(b"a\x00b", **headers, **{"content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    [row] = inbox_rows(door.store, "id = ?", event_id)
    assert '"data_base64":"YQBi"' in row["raw"]


def test_a_valid_surrogate_pair_is_text_like_any_other_and_stored(door: Door) -> None:
    event = new_event(subject="urn:x:\U0001f600", data={"title": "smile \U0001f600"})
    response = door.push(compact(event))  # ensure_ascii: the emoji travels as the pair \ud83d\ude00
    assert b"\\ud83d\\ude00" in compact(event)
    assert response.status_code == 200, response.text
    [row] = inbox_rows(door.store, "id = ?", event["id"])
    assert row["subject"] == "urn:x:\U0001f600"


@pytest.mark.parametrize(
    "time",
    [
        "9999-12-31T23:59:59-23:59",  # overflows on conversion to UTC: was acknowledged, then dead by OverflowError
        "0001-01-01T00:00:00+01:00",  # the other end
        "2024-04-19T07:22:19+15:00",  # no place has an offset past 14 hours; SQLite cannot order it
        "2024-04-19t07:22:19z",  # lower-case T and Z: valid RFC 3339, but the store's ordering cannot read it
        "2024-04-19T24:00:00Z",
        "2024-04-19T07:22:60Z",
    ],
)
def test_a_time_that_cannot_be_converted_or_ordered_is_refused(door: Door, time: str) -> None:
    door.refused(new_event(time=time), "time")


@pytest.mark.parametrize(
    "time",
    [
        "2024-04-19T07:22:19.123456789+14:00",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00-14:59",
        "2024-04-19T07:22:19Z",
    ],
)
def test_times_at_the_edges_of_what_can_be_read_are_accepted_as_sent(door: Door, time: str) -> None:
    event = new_event(time=time)
    assert door.push(event).status_code == 200
    [row] = inbox_rows(door.store, "id = ?", event["id"])
    assert row["time"] == time


def test_pushes_beside_unstorable_ones_are_all_acknowledged_and_stored(door: Door) -> None:
    """The observed failure: a surrogate id got 503, and so did ~8 % of the valid pushes committed with it."""
    good = [new_event() for _ in range(300)]
    bad = [new_event(id=f"bad-{n}{SURROGATE}") for n in range(10)] + [new_event(source=f"s{NUL}") for _ in range(10)]
    bodies = [compact(event) for event in good + bad]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda body: door.push(body).status_code, bodies))
    assert statuses == [200] * len(good) + [400] * len(bad)
    stored = {row["id"] for row in inbox_rows(door.store)}
    assert {event["id"] for event in good} <= stored


# --- the door's reading of `time` is the one the store and the dispatcher use ---


@pytest.mark.fuzz
@given(time=RFC3339_LIKE)
def test_every_time_the_door_accepts_the_store_normalises_and_sqlite_orders(time: str) -> None:
    try:
        to_new_event(new_event(time=time), "{}")
    except InvalidEvent as exc:
        assert exc.attribute == "time"
        return
    normalised = normalised_time(time)
    assert len(normalised) == len("2026-11-30T10:31:17.123456Z") and normalised.endswith("Z"), normalised
    with sqlite3.connect(":memory:") as conn:
        assert conn.execute("SELECT julianday(?)", (time,)).fetchone()[0] is not None
