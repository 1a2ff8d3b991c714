"""What the shared HTTP layer does with Altinn's answers, and where it refuses to send tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from receiver.altinn import AltinnClients, PermanentError, TransientError
from receiver.altinn.http import SUBSCRIPTION_KEY_HEADER, AltinnHttp, parse_retry_after
from receiver.server_thread import ServerThread, free_port
from tests.altinn_support import FakeAltinn, Handler, Recorder, Seen, call, new_key

KEY = new_key()
SUBS = "/events/api/v1/subscriptions"


def answering(response: Callable[[], Response]) -> Handler:
    async def handler(fake: FakeAltinn, request: Request) -> Response:
        return response()

    return handler


def list_subs(c: AltinnClients) -> Awaitable[Any]:
    return c.events.list_subscriptions()


def test_429_with_retry_after_seconds_is_transient_with_the_delay(tmp_path: Path) -> None:
    api = {f"GET {SUBS}": answering(lambda: Response(status_code=429, headers={"Retry-After": "7"}))}
    with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(TransientError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert err.value.status == 429
    assert err.value.retry_after == 7.0


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(tmp_path: Path, status: int) -> None:
    api = {f"GET {SUBS}": answering(lambda: Response("upstream broke", status_code=status))}
    with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(TransientError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert err.value.status == status and err.value.retry_after is None


def test_problem_details_title_and_error_code_surface_in_a_permanent_error(tmp_path: Path) -> None:
    problem = {"title": "The requested correspondence was not found", "status": 404, "errorCode": 1001}
    api = {f"GET {SUBS}": answering(lambda: JSONResponse(problem, status_code=404))}
    with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(PermanentError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert (err.value.status, err.value.title, err.value.error_code) == (404, problem["title"], 1001)
    assert "errorCode 1001" in str(err.value)


@pytest.mark.parametrize(
    ("problem", "shown"),
    [
        (
            {"title": "Bad Request", "status": 400, "detail": "DueDateTime is required", "errorCode": 1016},
            ": HTTP 400: Bad Request: DueDateTime is required (errorCode 1016)",
        ),
        ({"title": "Bad Request", "detail": "Bad Request", "status": 400}, ": HTTP 400: Bad Request"),
        ({"detail": "Only the reason", "status": 400}, ": HTTP 400: Only the reason"),
    ],
)
def test_problem_details_detail_gives_the_reason_after_the_title(
    tmp_path: Path, problem: dict[str, object], shown: str
) -> None:
    api = {f"GET {SUBS}": answering(lambda: JSONResponse(problem, status_code=400))}
    with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(PermanentError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert str(err.value) == "listing subscriptions" + shown
    assert err.value.title == problem.get("title", problem["detail"])


def test_events_json_string_body_becomes_the_title(tmp_path: Path) -> None:
    api = {f"GET {SUBS}": answering(lambda: JSONResponse("Resource filter must be a valid urn", status_code=400))}
    with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(PermanentError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert err.value.title == "Resource filter must be a valid urn"


def test_401_drops_the_token_and_retries_once_with_a_new_one(tmp_path: Path) -> None:
    async def first_token_refused(fake: FakeAltinn, request: Request) -> Response:
        token = request.headers["authorization"][7:]
        if len(fake.requests_to(SUBS)) == 1:
            fake.revoked.add(token)  # as if Altinn had stopped accepting it
            return Response(status_code=401)
        return JSONResponse({"count": 0, "subscriptions": []})

    with FakeAltinn(KEY.public_key(), api={f"GET {SUBS}": first_token_refused}) as fake:
        assert call(fake, tmp_path, KEY, list_subs) == []
    first, second = fake.requests_to(SUBS)
    assert first.headers["authorization"] != second.headers["authorization"]
    assert fake.exchanges == 2


def test_a_second_401_is_permanent_and_never_shows_the_token(tmp_path: Path) -> None:
    async def always_401(fake: FakeAltinn, request: Request) -> Response:
        return JSONResponse({"title": f"bad token {request.headers['authorization']}"}, status_code=401)

    with FakeAltinn(KEY.public_key(), api={f"GET {SUBS}": always_401}) as fake, pytest.raises(PermanentError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert err.value.status == 401
    assert len(fake.requests_to(SUBS)) == 2
    sent = {s.headers["authorization"][7:] for s in fake.requests_to(SUBS)}
    assert not any(token in str(err.value) or token in (err.value.title or "") for token in sent)


@pytest.mark.parametrize("key", ["", "apim-key-123"])
def test_subscription_key_header_only_when_configured_and_only_to_the_platform(tmp_path: Path, key: str) -> None:
    ok = answering(lambda: JSONResponse({"count": 0, "subscriptions": []}))
    with FakeAltinn(KEY.public_key(), api={f"GET {SUBS}": ok}) as fake:
        platform = httpx.URL(fake.url)
        # Maskinporten on another origin (localhost instead of 127.0.0.1) to tell the two apart
        fake.issuer = f"http://localhost:{platform.port}/"
        extra = f'subscription_key = "{key}"' if key else ""
        call(fake, tmp_path, KEY, lambda c: c.events.list_subscriptions(), extra_altinn=extra)
    header = SUBSCRIPTION_KEY_HEADER.lower()
    token, exchange, listing = (
        fake.requests_to("/token"),
        fake.requests_to("/authentication/api/v1/exchange/maskinporten"),
        fake.requests_to(SUBS),
    )
    assert token and exchange and listing
    assert header not in token[0].headers
    for seen in (*exchange, *listing):
        assert seen.headers.get(header) == (key or None)


def test_requests_to_other_hosts_are_refused_before_sending() -> None:
    seen: list[Seen] = []
    with ServerThread(Recorder(Starlette(), seen)) as other:
        http = AltinnHttp(platform_url="http://127.0.0.1:1", maskinporten_issuer="http://127.0.0.1:2/")

        async def main() -> None:
            try:
                request = http.build("GET", other.url + "/steal", headers={"Authorization": "Bearer secret"})
                await http.send(request, what="test")
            finally:
                await http.aclose()

        with pytest.raises(PermanentError, match="refusing to send"):
            asyncio.run(main())
    assert seen == []


class OnwardOn401(httpx.Auth):
    """An auth flow that answers a 401 by sending the request, token and all, on to `url` instead."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = "Bearer secret"
        response = yield request
        if response.status_code == 401:
            yield httpx.Request(request.method, self.url, headers=request.headers)


def test_a_request_made_by_an_auth_flow_is_held_to_the_configured_hosts(tmp_path: Path) -> None:
    seen: list[Seen] = []
    api = {f"GET {SUBS}": answering(Response)}  # the fake answers 401 to the flow's made-up token
    with ServerThread(Recorder(Starlette(), seen)) as other, FakeAltinn(KEY.public_key(), api=api) as fake:
        http = AltinnHttp(platform_url=fake.url, maskinporten_issuer=fake.issuer)

        async def main() -> None:
            try:
                await http.send(http.build("GET", fake.url + SUBS), what="test", auth=OnwardOn401(other.url + "/x"))
            finally:
                await http.aclose()

        with pytest.raises(PermanentError) as err:
            asyncio.run(main())
    assert str(err.value).startswith("test: refusing to send to 127.0.0.1: only the configured")
    assert [s.path for s in fake.seen] == [SUBS]
    assert seen == []


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    seen: list[Seen] = []
    with ServerThread(Recorder(Starlette(routes=[Route("/x", lambda r: Response())]), seen)) as other:
        api = {f"GET {SUBS}": answering(lambda: RedirectResponse(other.url + "/x", status_code=307))}
        with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(PermanentError) as err:
            call(fake, tmp_path, KEY, list_subs)
    assert err.value.status == 307 and "not followed" in str(err.value)
    assert seen == []


def test_timeouts_and_refused_connections_are_transient() -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return Response()

    with ServerThread(Starlette(routes=[Route("/slow", slow)])) as server:
        http = AltinnHttp(platform_url=server.url, maskinporten_issuer=server.url + "/", timeout=httpx.Timeout(0.2))
        closed = f"http://127.0.0.1:{free_port()}"
        refusing = AltinnHttp(platform_url=closed, maskinporten_issuer=closed + "/")

        async def main() -> list[str]:
            messages = []
            for client, url in ((http, server.url + "/slow"), (refusing, closed + "/x")):
                try:
                    await client.send(client.build("GET", url), what="probe")
                except TransientError as exc:
                    messages.append(str(exc))
                finally:
                    await client.aclose()
            return messages

        timed_out, refused = asyncio.run(main())
    assert "timed out" in timed_out
    assert "connection failed" in refused


def test_error_bodies_are_shortened(tmp_path: Path) -> None:
    api = {f"GET {SUBS}": answering(lambda: JSONResponse(json.dumps("x" * 5000), status_code=400))}
    with FakeAltinn(KEY.public_key(), api=api) as fake, pytest.raises(PermanentError) as err:
        call(fake, tmp_path, KEY, list_subs)
    assert len(str(err.value)) < 600
