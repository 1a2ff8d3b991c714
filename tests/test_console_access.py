"""Who reaches the console and how, over real HTTP on loopback against `altinn-receiver serve`: the bearer token,
the session cookie from /login (its flags, expiry and logout), refusals (wrong token, missing or stale CSRF token,
read_only), the console on a listener of its own (port 0 shown in /readyz) while the webhook's port serves no
console page, and the token kept out of the log."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from receiver.console.app import MAX_CONNECTIONS
from receiver.server_thread import free_port
from tests.console_support import BEARER, TOKEN, ConsoleServe, csrf_token, sign_in
from tests.ingest_support import SECRET, ServeProcess, new_event, push, run_cli, webhook
from tests.support import wait_until, write_config


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServe]:
    with ConsoleServe(tmp_path_factory.mktemp("console")) as server:
        yield server


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServe]:
    """A read-only console on every address (not loopback alone), whose sessions last two seconds."""
    settings = {"read_only": True, "session_lifetime": "2s", "host": "0.0.0.0"}
    with ConsoleServe(tmp_path_factory.mktemp("read-only"), console=settings) as server:
        yield server


def cookie_flags(answer: httpx.Response, name: str) -> set[str]:
    """The flags of the cookie `name` that `answer` sets, in lower case."""
    [cookie] = [value for value in answer.headers.get_list("set-cookie") if value.startswith(f"{name}=")]
    return {flag.strip().lower() for flag in cookie.split(";")[1:]}


def pushed(server: ConsoleServe) -> str:
    """The id of an event pushed to the server's webhook."""
    event = new_event()
    with httpx.Client() as client:
        assert push(client, webhook(server.url), event).status_code == 200
    return str(event["id"])


def test_the_console_listens_on_its_own_port_which_readyz_shows(serving: ConsoleServe) -> None:
    ready = httpx.get(f"{serving.url}/readyz").json()
    port = int(ready["console"].rsplit(":", 1)[1])
    assert ready["console"] == f"http://127.0.0.1:{port}" and port not in (0, serving.port)
    [listening] = [line for line in serving.log_lines() if line["msg"] == "console listening"]
    assert listening["url"] == ready["console"]


def test_the_webhook_port_serves_no_console_page_and_keeps_post_events(serving: ConsoleServe) -> None:
    event_id = pushed(serving)
    for path in ("/", "/login", "/logout", "/dead", f"/events/{event_id}", "/static/console.css", "/subscriptions"):
        assert httpx.get(serving.url + path, headers=BEARER).status_code == 404, path
    assert httpx.post(f"{serving.url}/dead/replay", headers=BEARER).status_code == 404
    assert httpx.get(f"{serving.url}/events", headers=BEARER).status_code == 405  # the webhook: POST only
    assert httpx.get(f"{serving.console_url}/events/{event_id}", headers=BEARER).status_code == 200


def test_the_bearer_token_opens_every_page_and_a_wrong_one_is_refused(serving: ConsoleServe) -> None:
    with serving.client() as client:
        assert client.get("/events", headers=BEARER).status_code == 200
        assert client.get("/dead", headers=BEARER).status_code == 200
        for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer"):
            answer = client.get("/events", headers={"Authorization": header})
            assert answer.status_code == 401, header
            assert answer.headers["www-authenticate"].startswith("Bearer")


def test_without_a_token_a_browser_is_sent_to_login_and_anything_else_is_refused(serving: ConsoleServe) -> None:
    with serving.client() as client:
        answer = client.get("/events?status=dead")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Fevents%3Fstatus%3Ddead"
        assert client.post("/dead/replay", data={"all": "1"}).status_code == 401
        assert client.get("/events", headers={"Accept": "text/event-stream"}).status_code == 401
        login = client.get("/login")
        assert login.status_code == 200 and '<input id="token" name="token" type="password"' in login.text
        assert client.get("/static/console.js").status_code == 200  # the login page's own files


def test_signing_in_sets_a_strict_http_only_session_cookie(serving: ConsoleServe) -> None:
    with serving.client() as client:
        wrong = sign_in(client, TOKEN + "x", next="/dead")
        assert wrong.status_code == 401 and "not the console token" in wrong.text
        assert "console_session" not in wrong.cookies
        answer = sign_in(client, TOKEN, next="/dead")
        assert answer.status_code == 303 and answer.headers["location"] == "/dead"
        flags = cookie_flags(answer, "console_session")
        assert {"httponly", "samesite=strict", "path=/", "max-age=28800"} <= flags
        assert "secure" not in flags  # on loopback: a browser would not send a Secure cookie over plain http
        assert TOKEN not in answer.headers["set-cookie"]
        page = client.get("/dead")
        assert page.status_code == 200 and "Sign out" in page.text


def test_login_goes_back_only_to_a_page_of_the_console(serving: ConsoleServe) -> None:
    with serving.client() as client:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            answer = sign_in(client, TOKEN, next=target)
            assert answer.headers["location"] == "/", target


def test_login_needs_the_csrf_token_of_its_own_form(serving: ConsoleServe) -> None:
    """Login CSRF: another site's page can post the sign-in form, but it cannot read the form's token, nor send the
    cookie that token is bound to."""
    with serving.client() as client, serving.client() as other:
        another = csrf_token(other.get("/login").text, "/login")
        assert client.post("/login", data={"token": TOKEN}).status_code == 403
        assert client.post("/login", data={"token": TOKEN, "csrf_token": another}).status_code == 403  # no cookie
        client.get("/login")
        for token in ("", "x" * 64, another):
            answer = client.post("/login", data={"token": TOKEN, "csrf_token": token})
            assert answer.status_code == 403, token
            assert "console_session" not in answer.cookies
            assert "did not come from this console" in answer.text and csrf_token(answer.text)  # and a form that works
        assert client.get("/events").status_code == 303
        assert sign_in(client, TOKEN).status_code == 303
    wait_until(
        lambda: [
            line for line in serving.log_lines() if line["msg"] == "console: sign-in without its form's CSRF token"
        ],
        message="the refused sign-ins in the log",
    )


def test_the_bearer_header_signs_in_on_login_without_a_form(serving: ConsoleServe) -> None:
    with serving.client() as client:
        answer = client.post("/login", headers=BEARER, data={"next": "/dead"})
        assert answer.status_code == 303 and answer.headers["location"] == "/dead"
        assert client.get("/dead").status_code == 200  # the session cookie alone, without the header
        wrong = client.post("/login", headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401 and "console_session" not in wrong.cookies


def test_logout_is_a_post_with_the_csrf_token_and_ends_the_session(serving: ConsoleServe) -> None:
    with serving.signed_in() as client:
        session = client.cookies["console_session"]
        page = client.get("/events")
        assert page.status_code == 200
        shown = client.get("/logout")  # a link to /logout signs no one out: it shows the button
        assert shown.status_code == 200 and 'action="/logout"' in shown.text
        assert csrf_token(shown.text) == csrf_token(page.text)
        assert client.post("/logout").status_code == 403
        assert client.post("/logout", data={"csrf_token": "x"}).status_code == 403
        assert client.get("/events").status_code == 200
        answer = client.post("/logout", data={"csrf_token": csrf_token(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert client.get("/logout").headers["location"] == "/login"  # signed out: nothing to sign out of
    with serving.client(cookies={"console_session": session}) as stale:
        assert stale.get("/events").status_code == 303  # the old cookie opens nothing any more


def test_a_change_needs_the_csrf_token_of_its_sign_in(serving: ConsoleServe) -> None:
    event_id = pushed(serving)
    replay = f"/events/{event_id}/replay"
    with serving.signed_in() as client, serving.signed_in() as other:
        token = csrf_token(client.get(f"/events/{event_id}").text)
        assert client.post(replay).status_code == 403
        assert client.post(replay, data={"csrf_token": ""}).status_code == 403
        assert client.post(replay, data={"csrf_token": token + "x"}).status_code == 403
        other_token = csrf_token(other.get(f"/events/{event_id}").text)
        assert other_token != token and client.post(replay, data={"csrf_token": other_token}).status_code == 403
        refused = client.post("/dead/replay", data={"all": "1"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        wait_until(lambda: client.get(f"/events/{event_id}").text.count("status-done") == 1, message="event done")
        answer = client.post(replay, data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == f"/events/{event_id}?replayed=1"
    with serving.client(headers=BEARER) as bearer:
        assert bearer.post(replay).status_code == 403  # a bearer sign-in's forms carry a token of their own too
        token = csrf_token(bearer.get(f"/events/{event_id}").text)
        assert bearer.post(replay, data={"csrf_token": token}).status_code in (303, 409)  # 409: running again


def test_a_read_only_console_offers_and_allows_no_change(read_only: ConsoleServe) -> None:
    event_id = pushed(read_only)
    with read_only.client(headers=BEARER) as client:
        page = client.get(f"/events/{event_id}")
        assert page.status_code == 200 and "/replay" not in page.text and "read-only" in page.text
        for path, form in ((f"/events/{event_id}/replay", {}), ("/dead/replay", {"all": "1"})):
            answer = client.post(path, data=form)
            assert answer.status_code == 403 and "read-only" in answer.text, path  # refused before any CSRF check


def test_a_session_expires_after_its_lifetime_and_is_secure_off_loopback(read_only: ConsoleServe) -> None:
    with read_only.client() as client:
        login = client.get("/login")
        assert {"secure", "httponly", "samesite=strict", "path=/login"} <= cookie_flags(login, "console_login")
        # A browser sends a Secure cookie only over TLS; this client is told to send it over plain loopback HTTP.
        client.cookies.set("console_login", login.cookies["console_login"])
        answer = client.post("/login", data={"token": TOKEN, "csrf_token": csrf_token(login.text)})
        assert answer.status_code == 303
        assert {"secure", "httponly", "samesite=strict", "max-age=2"} <= cookie_flags(answer, "console_session")
        session = answer.cookies["console_session"]
    with read_only.client(cookies={"console_session": session}) as client:
        assert client.get("/events").status_code == 200
        started = time.monotonic()
        wait_until(lambda: client.get("/events").status_code == 303, timeout=10, message="the session to expire")
        assert time.monotonic() - started < 4


def test_the_token_never_reaches_the_log(serving: ConsoleServe) -> None:
    with serving.client() as client:
        sign_in(client, TOKEN)
        sign_in(client, "a-wrong-token-that-is-long-enough-000000")
        client.get("/events", headers=BEARER)
        client.get("/events", headers={"Authorization": "Bearer wrong"})
    wanted = ("console: signed in", "console: a wrong token in the Authorization header", "sign-in with a wrong token")

    def logged() -> str | None:
        text = serving.log_path.read_text()
        return text if all(line in text for line in wanted) else None

    log = wait_until(logged, message="the sign-in lines in the log")
    assert TOKEN not in log and "a-wrong-token" not in log


@pytest.mark.parametrize(
    ("token", "problem"),
    [("short-token", "console.token: must be at least 32 characters"), ("", "console.token: must be at least 32")],
)
def test_a_short_console_token_is_a_config_error(tmp_path: Path, token: str, problem: str) -> None:
    config = write_config(
        tmp_path / "receiver.toml",
        f'[receiver]\nsecret = "{SECRET}"\n[store]\npath = "r.db"\n[console]\ntoken = "${{TOKEN}}"\n',
    )
    result = run_cli("serve", "--config", str(config), env={"TOKEN": token})
    assert result.returncode == 2 and problem in result.stderr


def test_a_console_port_that_is_taken_stops_serve_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path / "receiver.toml",
            f'[receiver]\nsecret = "{SECRET}"\nport = {free_port()}\n[store]\npath = "r.db"\n'
            f'[console]\ntoken = "{TOKEN}"\nport = {port}\n',
        )
        result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "change [console] port" in result.stderr
    assert TOKEN not in result.stderr


def test_the_console_holds_a_bounded_number_of_connections(serving: ConsoleServe) -> None:
    """Connections to the console beyond its limit are answered 503 at once: whoever reaches it cannot use up the
    file descriptors the webhook needs, which keeps taking pushes meanwhile."""
    host, port = serving.console_url.removeprefix("http://").rsplit(":", 1)
    with ExitStack() as held:
        for _ in range(MAX_CONNECTIONS):
            held.enter_context(socket.create_connection((host, int(port))))
        wait_until(lambda: httpx.get(serving.console_url + "/login").status_code == 503, message="the limit")
        answer = httpx.get(serving.console_url + "/login")
        assert answer.status_code == 503 and "the console holds as many connections" in answer.text
        pushed(serving)
    wait_until(lambda: httpx.get(serving.console_url + "/login").status_code == 200, message="room again")


@pytest.mark.parametrize("args", [("--role", "all"), ("--single-process",), ("--role", "worker")])
def test_console_requests_have_access_lines_in_every_mode(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A console request has its access line whichever process serves the console (the worker child under `--role
    all`), without the token or the session cookie; the worker child's own port still logs nothing (the webhook
    child's line for /metrics is the one line of that request)."""
    with ConsoleServe(tmp_path, args=args) as server, server.signed_in() as client:
        session = client.cookies["console_session"]
        assert client.get("/dead", params={"reason": "x"}).status_code == 200
        assert client.get("/events", headers=BEARER).status_code == 200

        def access(path: str) -> list[dict[str, object]]:
            return [line for line in server.log_lines() if line["logger"] == "receiver.access" and line["path"] == path]

        assert httpx.get(f"{server.url}/metrics").status_code == 200  # through the webhook child to the worker's
        assert client.get("/subscriptions").status_code == 200  # its line comes after any the worker wrote for /metrics
        wait_until(lambda: access("/subscriptions") and access("/metrics"), message="the access lines")
        assert len(access("/metrics")) == 1
        assert [(line["method"], line["http_status"]) for line in access("/login")] == [("GET", 200), ("POST", 303)]
        assert all(isinstance(line["ms"], float) for line in access("/login"))
        [dead] = access("/dead")
        assert dead["msg"] == "GET /dead 200" and dead["query"] == "?reason=x"
        assert [line["http_status"] for line in access("/events")] == [200]
        text = server.log_path.read_text()
        assert TOKEN not in text and session not in text


@pytest.mark.parametrize("args", [("--single-process",), ("--role", "worker")])
def test_the_console_runs_with_the_worker_role_in_one_process_too(tmp_path: Path, args: tuple[str, ...]) -> None:
    with ConsoleServe(tmp_path, args=args) as server, server.client(headers=BEARER) as client:
        assert client.get("/events").status_code == 200
        assert httpx.get(f"{server.url}/events/x", headers=BEARER).status_code == 404
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0


def test_the_webhook_role_serves_no_console(tmp_path: Path) -> None:
    server = ConsoleServe(tmp_path, args=("--role", "webhook"))
    ServeProcess.start(server)  # the webhook alone: there is no console to wait for
    try:
        assert "console" not in httpx.get(f"{server.url}/readyz").json()
        pushed(server)
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0
    assert not [line for line in server.log_lines() if line["msg"] == "console listening"]
