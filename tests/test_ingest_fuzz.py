"""Property: whatever the body and headers, the webhook answers without a 5xx and the server lives on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.server_thread import ServerThread
from tests.ingest_support import make_config, new_event, running_app, webhook

# Header values the client can send at all (HTTP forbids leading or trailing whitespace).
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ATTRIBUTES = st.sampled_from(
    [
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "subject",
        "resource",
        "data",
        "data_base64",
        "datacontenttype",
        "x",
    ]
)


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A valid event with some attributes replaced by arbitrary JSON values or removed."""
    event: dict[str, Any] = new_event()
    for name in draw(st.lists(ATTRIBUTES, max_size=3)):
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(JSON_VALUES)
    return json.dumps(event).encode()


BODIES = st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda value: json.dumps(value).encode()), mutated_event())
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "application/cloudevents+json; charset=utf-8", "text/plain", ""]),
    HEADER_TEXT,
)
CE_HEADERS = st.dictionaries(
    st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-x", "ce-"]),
    HEADER_TEXT,
    max_size=5,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with running_app(make_config(tmp_path_factory.mktemp("fuzz"), max_body_bytes=1024)) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


@pytest.mark.fuzz
@given(body=BODIES, content_type=CONTENT_TYPES, ce_headers=CE_HEADERS, method=st.sampled_from(["POST", "POST", "PUT"]))
def test_arbitrary_pushes_never_get_a_5xx(
    server: ServerThread,
    client: httpx.Client,
    body: bytes,
    content_type: str,
    ce_headers: dict[str, str],
    method: str,
) -> None:
    headers = {"content-type": content_type, **ce_headers}
    response = client.request(method, webhook(server.url), content=body, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code == 400:
        assert "attribute" in response.json()


def test_the_server_is_alive_after_the_fuzzing(server: ServerThread, client: httpx.Client) -> None:
    assert client.get(f"{server.url}/healthz").status_code == 200
    assert client.get(f"{server.url}/readyz").status_code == 200
