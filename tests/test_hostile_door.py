"""Hostile pushes at the door: text that cannot be stored and times that cannot be read get a 400 naming the
attribute, nothing of them is stored, and the valid pushes beside them are all acknowledged and stored."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given

from handlers.store import normalised_time
from receiver.server_thread import ServerThread
from receiver.timeutil import parse_event_time
from receiver.web.cloudevent import InvalidEvent, check_attributes, compact_json, to_new_event
from tests.hostile_strategies import RFC3339_LIKE
from tests.ingest_support import (
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


# --- the door's raw checks imply the `cloudevents` package's validation (the door no longer builds its CloudEvent) ---

JSON_VALUES: list[Any] = [0, 1, -1, 1.5, 0.0, True, False, [], ["x"], {}, {"a": 1}, "", " ", "x", "1.0", "0.3"]
ATTRIBUTES = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"]
EXTENSIONS = ["resource", "resourceinstance", "alternativesubject", "myext"]
# Extension names the package must refuse or accept, among them non-ASCII letters and digits (full-width, Arabic).
ODD_NAMES = ["Upper", "UPPER", "with-dash", "under_score", "a" * 64, "a" * 65, "data", "data_base64", "d\u00e4t\u00e4"]
ODD_NAMES += ["\uff46\uff55\uff4c\uff4c", "\u0661\u0662\u0663", "", "abc\n", "a b", "specVersion", "0"]
TIMES = [
    "2024-04-19T07:22:19Z",
    "2024-04-19T07:22:19.4380391Z",
    "2024-04-19T07:22:19.123456789+14:00",
    "2024-04-19T07:22:19+01:00",
    "0001-01-01T00:00:00-14:59",
    "9999-12-31T23:59:59Z",
    "2024-04-19T07:22:19",  # no offset
    "2024-04-19T07:22:19.5",
    "2024-04-19t07:22:19z",
    "2024-04-19",
    "2024-04-19T07:22:19+15:00",
    "yesterday",
]
SPECVERSIONS: list[Any] = ["1.0", "1", "1.00", "0.3", "1.0 ", "v1.0", 1.0, 1, True]
DATA: list[dict[str, Any]] = [
    {"data": {"a": [1, "b"]}}, {"data": [1, 2]}, {"data": "text"}, {"data": 3}, {"data": False}, {"data": None},
    {"data_base64": "YQBi"}, {"data_base64": ""}, {"data_base64": "***"}, {"data_base64": 5}, {"data_base64": None},
    {"data": None, "data_base64": "YQBi"}, {"data": "x", "data_base64": None}, {"data": "x", "data_base64": "YQBi"},
    {"data": {"a": 1}, "datacontenttype": "application/json"}, {"data_base64": "YQBi", "datacontenttype": "x/y"},
]  # fmt: skip
MISSING = object()
DATA_MEMBERS = ("data", "data_base64")
SUBSCRIPTION_SAMPLE = "validate-subscription.json"


def fixture_events() -> list[dict[str, Any]]:
    """Altinn's shapes: the pushed samples, a pulled page's items and the test's own `new_event`, ids fixed."""
    events: list[dict[str, Any]] = [
        json.loads(sample(name))
        for name in ("correspondence-published.json", "correspondence-receiverneverread.json", SUBSCRIPTION_SAMPLE)
    ]
    events.extend(json.loads(sample("pull-page.json")))
    events.append(new_event(id="6f1c2d0e-0000-4000-8000-000000000001", resourceinstance="r-1", data={"x": 1}))
    return events


def with_attribute(event: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    changed = {key: item for key, item in event.items() if key != name}
    if value is not MISSING:
        changed[name] = value
    return changed


def oracle_corpus() -> Iterator[dict[str, Any]]:
    """Valid events of Altinn's shape and every mutation of them the package's validation looks at, in a fixed order."""
    for event in fixture_events():
        yield event
        for name in ATTRIBUTES + EXTENSIONS:
            for value in [MISSING, None, *JSON_VALUES]:
                yield with_attribute(event, name, value)
        for name in ODD_NAMES:
            for value in ("x", 1, None):
                yield with_attribute(event, name, value)
        for time in TIMES:
            yield with_attribute(event, "time", time)
        for specversion in SPECVERSIONS:
            yield with_attribute(event, "specversion", specversion)
        for data in DATA:
            yield {**event, **data}


def as_the_package_reads(event: dict[str, Any]) -> CloudEvent:
    """The event as `CloudEvent(attributes, data)`, built as the door built it before it stopped: null attributes
    are absent (the JSON format's rule), `data`/`data_base64` are the payload, `time` is a datetime."""
    attributes = {name: value for name, value in event.items() if value is not None and name not in DATA_MEMBERS}
    if "time" in attributes:
        attributes["time"] = parse_event_time(attributes["time"])
    encoded = event.get("data_base64")
    data = base64.b64decode(encoded) if encoded is not None else event.get("data")
    return CloudEvent(attributes, data)


def test_every_event_the_door_accepts_the_cloudevents_package_accepts_too() -> None:
    """The door does not build a `CloudEvent`: its raw checks are stricter than the package's validation in every
    respect. The package is the oracle here: whatever `to_new_event` accepts, `CloudEvent(...)` must accept."""
    accepted = refused = 0
    for event in oracle_corpus():
        raw = compact_json(event)
        try:
            to_new_event(event, raw)
        except InvalidEvent:
            refused += 1
            continue
        accepted += 1
        assert check_attributes(event) == {k: v for k, v in event.items() if v is not None and k not in DATA_MEMBERS}
        try:
            as_the_package_reads(event)
        except CloudEventValidationError as exc:
            pytest.fail(f"the door accepts {raw} but the cloudevents package refuses it: {exc}")
    # Not vacuous: both sides of the door are exercised (663 and 1 149 with the corpus above).
    assert accepted > 600 and refused > 1000, (accepted, refused)


@pytest.mark.parametrize(
    "change",
    [
        {"time": datetime(2024, 4, 19, 7, 22, 19)},  # naive: parse_event_time never returns one
        {"time": "2024-04-19T07:22:19Z"},  # text, not a datetime
        {"id": ""},
        {"source": 5},
        {"specversion": "0.3"},
        {"subject": ""},
        {"data": "x"},  # `data` is not an attribute
        {"Upper": "x"},
        {"with-dash": "x"},
    ],
    ids=repr,
)
def test_the_oracle_refuses_what_it_should(change: dict[str, Any]) -> None:
    """The oracle above can fail: fed attributes directly, the package refuses each of these (and takes the valid
    event they were changed from)."""
    attributes = {**fixture_events()[0], "time": datetime(2024, 4, 19, tzinfo=UTC)}
    CloudEvent(dict(attributes), None)
    with pytest.raises(CloudEventValidationError):
        CloudEvent({**attributes, **change}, None)


@pytest.mark.parametrize(
    "change", [{"id": ""}, {"type": 1}, {"specversion": "0.3"}, {"Upper": "x"}, {"a-b": 1}], ids=repr
)
def test_the_oracle_refuses_events_of_the_corpus_that_the_door_refuses(change: dict[str, Any]) -> None:
    for event in fixture_events():
        as_the_package_reads(event)
        with pytest.raises(CloudEventValidationError):
            as_the_package_reads({**event, **change})
