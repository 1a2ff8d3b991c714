"""Who may use the console: the console token, as `Authorization: Bearer <token>` on any request or exchanged on
`/login` for a session cookie; and the guard every changing POST passes (read_only, the CSRF token).

The token is compared in constant time and never written anywhere: not in a URL (the login form posts it), not in
a log line (`[console] token` is a secret, redacted like every other), not in a cookie (the cookie holds a random
session id).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.console.render import render
from receiver.console.state import console_state

log = logging.getLogger("receiver.console")

SESSION_COOKIE = "console_session"
CSRF_FIELD = "csrf_token"
PUBLIC_PATHS = ("/login", "/logout")
PUBLIC_PREFIXES = ("/static/",)


@dataclass(frozen=True)
class SignedIn:
    """How a request is signed in: with the bearer header (`session_id` empty) or a session; `csrf` is the token its
    changing POSTs must carry."""

    csrf: str
    session_id: str = ""


def _bearer(header: str) -> str | None:
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


class RequireSignIn:
    """Every request but the sign-in pages and the static files needs the token or a live session.

    A wrong bearer token is 401. Without either, a browser's GET is sent to `/login` (and back after), anything
    else is 401.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = console_state(request)
        header = request.headers.get("authorization")
        if header is not None:
            token = _bearer(header)
            if token is None or not _same(token, state.console.token):
                log.warning(
                    "console: a wrong token in the Authorization header",
                    extra={"client": _client(request), "path": scope["path"]},
                )
                await _refused(401, "wrong console token")(scope, receive, send)
                return
            scope.setdefault("state", {})["signed_in"] = SignedIn(csrf=state.sessions.bearer_csrf)
            await self.app(scope, receive, send)
            return
        session = state.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            scope.setdefault("state", {})["signed_in"] = SignedIn(csrf=session.csrf, session_id=session.id)
            await self.app(scope, receive, send)
            return
        if request.method in ("GET", "HEAD") and "text/event-stream" not in request.headers.get("accept", ""):
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response: Response = RedirectResponse(f"/login?next={quote(wanted, safe='')}", status_code=303)
        else:
            response = _refused(401, "sign in on /login, or send Authorization: Bearer <console token>")
        await response(scope, receive, send)


def _refused(status: int, reason: str) -> Response:
    return PlainTextResponse(reason, status_code=status, headers={"WWW-Authenticate": 'Bearer realm="console"'})


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def signed_in(request: Request) -> SignedIn | None:
    """How this request is signed in (None on the public pages)."""
    value: SignedIn | None = getattr(request.state, "signed_in", None)
    return value


async def require_change(request: Request) -> FormData:
    """The form of a changing POST that may go ahead: 403 when the console is read-only, or when the form's
    `csrf_token` is missing or not this sign-in's."""
    if console_state(request).console.read_only:
        raise HTTPException(403, "the console is read-only ([console] read_only = true): nothing can be changed here")
    form = await request.form()
    given = form.get(CSRF_FIELD)
    who = signed_in(request)
    if who is None or not isinstance(given, str) or not _same(given, who.csrf):
        raise HTTPException(403, "missing or stale CSRF token: reload the page and try again")
    return form


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path on this console only."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _on_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def login_page(request: Request) -> Response:
    return render(request, "login.html", next=_safe_next(request.query_params.get("next", "/")), error="")


async def login(request: Request) -> Response:
    state = console_state(request)
    form = await request.form()
    token, target = form.get("token"), _safe_next(str(form.get("next") or "/"))
    if not isinstance(token, str) or not _same(token.strip(), state.console.token):
        log.warning("console: sign-in with a wrong token", extra={"client": _client(request)})
        return render(request, "login.html", status_code=401, next=target, error="That is not the console token.")
    session = state.sessions.start()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(state.console.session_lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=not _on_loopback(state.console.host),
    )
    log.info("console: signed in", extra={"client": _client(request)})
    return response


async def logout(request: Request) -> Response:
    """End this browser's session (GET or POST: the cookie is SameSite=Strict, no other site can send it here)."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        console_state(request).sessions.end(session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


routes: list[BaseRoute] = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["GET", "POST"]),
]
