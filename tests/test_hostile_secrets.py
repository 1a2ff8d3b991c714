"""The webhook code never appears in the access log, in any form of the query the code check accepts: the log
reads the query with the check's own decoding. It appeared in clear for `?%63ode=CODE` (accepted) and
`?a=1;code=CODE`."""

from __future__ import annotations

import signal
from urllib.parse import quote, quote_plus, unquote_plus

import httpx
import pytest

from receiver.observability.logs import query_fields
from tests.ingest_support import SECRET, ServeProcess, new_event, push

SPACED = "open sesame, open up at once"  # a secret with spaces: `+` in a query is a space
SECRETS = (SECRET, SPACED)


def every_byte(text: str, case: str = "x") -> str:
    return "".join(f"%{byte:02{case}}" for byte in text.encode())


def forms(secret: str) -> list[str]:
    """The ways the value `secret` can be written in a query (all of which the check decodes to it)."""
    return [
        secret,
        every_byte(secret),
        every_byte(secret, "X"),
        quote(secret, safe=""),
        quote_plus(secret),
        secret[:4] + every_byte(secret[4:8]) + secret[8:],
    ]


ACCEPTED = [
    *dict.fromkeys(f"code={value}" for secret in SECRETS for value in forms(secret)),
    *(f"{key}={SECRET}" for key in ("%63ode", "%63%6F%64%65", "%63%6f%64%65", "c%6Fde")),
    f"x=1&code={every_byte(SECRET)}&y=2",
    f"code={quote(SECRET)}&code=second",
    f"&&code={SPACED.replace(' ', '+')}&",
    f"code={SECRET}&token=abc&secret=def",
]
REFUSED = [
    f"a=1;code={SECRET}",
    f"a=1;code={every_byte(SECRET)}",
    f"code=wrong&code={every_byte(SECRET)}",
    f"CODE={every_byte(SECRET)}",
    f"a=1%26code%3D{every_byte(SECRET)}",
    f"code={every_byte(SECRET)}x",
]


@pytest.fixture(scope="module")
def access_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    """Every query above sent to a real `serve`, which then exits: its log's text, and each query's status."""
    serve = ServeProcess(tmp_path_factory.mktemp("secrets"), previous_secrets=[SPACED])
    statuses = {}
    with serve, httpx.Client(timeout=10) as client:
        for query in ACCEPTED + REFUSED:
            statuses[query] = push(client, f"{serve.url}/events?{query}", new_event()).status_code
            statuses["metrics:" + query] = client.get(f"{serve.url}/metrics?{query}").status_code
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    return serve.log_path.read_text(encoding="utf-8"), statuses


def test_the_check_accepts_each_form_and_refuses_the_others(access_log: tuple[str, dict[str, int]]) -> None:
    _, statuses = access_log
    assert {query: statuses[query] for query in ACCEPTED} == dict.fromkeys(ACCEPTED, 200)
    assert {query: statuses[query] for query in REFUSED} == dict.fromkeys(REFUSED, 401)


def sent_forms(query: str) -> set[str]:
    """The values in `query` as they went over the wire (the client may encode some characters itself) that hold a
    secret once decoded."""
    sent = httpx.URL(f"http://127.0.0.1/events?{query}").query.decode()
    values = [field.partition("=")[2] for part in sent.split("&") for field in part.split(";")]
    return {value for value in values if any(secret in unquote_plus(value) for secret in SECRETS)}


def test_no_form_of_a_secret_is_in_the_log(access_log: tuple[str, dict[str, int]]) -> None:
    text, _ = access_log
    assert text.count('"msg": "POST /events ') == text.count('"msg": "GET /metrics ') == len(ACCEPTED) + len(REFUSED)
    for secret in SECRETS:
        for form in {*forms(secret), every_byte(secret[4:8]), every_byte(secret[4:8], "X")}:
            assert form not in text, form
    for query in ACCEPTED + REFUSED:
        for form in sent_forms(query):
            assert form not in text, (query, form)
    assert "code=***" in text


@pytest.mark.parametrize("query", ACCEPTED)
def test_the_log_reads_the_query_as_the_check_does(query: str) -> None:
    """The shared reading finds the code of every accepted form (the check compares exactly this value)."""
    codes = [value for name, value in query_fields(query.encode()) if name == b"code"]
    assert codes[0] in {secret.encode() for secret in SECRETS}
