"""Who may use the console: the console token, as `Authorization: Bearer <token>` on any request or exchanged on
`/login` for a session cookie; and the CSRF tokens every POST from a browser carries: the session's on a change
(which also passes read_only) and on `/logout`, and on `/login`, before there is a session, one bound to a cookie
of the sign-in form (`Sessions.login_csrf`), so that no other site's page can sign a browser in to a session.

The token is compared in constant time and never written anywhere: not in a URL (the login form posts it), not in
a log line (`[console] token` is a secret, redacted like every other), not in a cookie (the cookie holds a random
session id).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
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
LOGIN_COOKIE = "console_login"
"""The sign-in form's cookie (path `/login`): the random value its CSRF token is bound to."""
CSRF_FIELD = "csrf_token"
STALE_FORM = "This sign-in form did not come from this console, or is from before it restarted: sign in again here."
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
    """Every request but the static files' is signed in with the token or a live session when it can be (the sign-in
    pages see who is signed in), and every one but the sign-in pages' must be.

    A wrong bearer token is 401, on any page. Without either, a browser's GET is sent to `/login` (and back after),
    anything else is 401.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = console_state(request)
        header = request.headers.get("authorization")
        who: SignedIn | None = None
        if header is not None:
            token = _bearer(header)
            if token is None or not _same(token, state.console.token):
                log.warning(
                    "console: a wrong token in the Authorization header",
                    extra={"client": _client(request), "path": scope["path"]},
                )
                await _refused(401, "wrong console token")(scope, receive, send)
                return
            who = SignedIn(csrf=state.sessions.bearer_csrf)
        elif (session := state.sessions.get(request.cookies.get(SESSION_COOKIE, ""))) is not None:
            who = SignedIn(csrf=session.csrf, session_id=session.id)
        if who is not None:
            scope.setdefault("state", {})["signed_in"] = who
        elif scope["path"] not in PUBLIC_PATHS:
            await _sign_in_first(request)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _sign_in_first(request: Request) -> Response:
    """The answer to a request that is not signed in."""
    if request.method in ("GET", "HEAD") and "text/event-stream" not in request.headers.get("accept", ""):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(wanted, safe='')}", status_code=303)
    return _refused(401, "sign in on /login, or send Authorization: Bearer <console token>")


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
    return await _csrf_checked(request)


async def _csrf_checked(request: Request) -> FormData:
    """The form of a POST, once its `csrf_token` is found to be this sign-in's (403 otherwise)."""
    form = await request.form()
    given = form.get(CSRF_FIELD)
    who = signed_in(request)
    if who is None or not isinstance(given, str) or not _same(given, who.csrf):
        log.warning(
            "console: a POST without its CSRF token", extra={"client": _client(request), "path": request.url.path}
        )
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


def _set_cookie(request: Request, response: Response, name: str, value: str, path: str, max_age: int | None) -> None:
    """A cookie no script reads and no other site's request carries; `Secure` unless the console is on loopback."""
    secure = not _on_loopback(console_state(request).console.host)
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict", secure=secure)


def _by_bearer(request: Request) -> bool:
    who = signed_in(request)
    return who is not None and not who.session_id


def _login_form(request: Request, target: str, *, status_code: int = 200, error: str = "") -> Response:
    """The sign-in page, its form's CSRF token bound to this browser's login cookie (a new one if it has none; one
    per browser rather than per page, so that two tabs' forms both work)."""
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    form_csrf = console_state(request).sessions.login_csrf(nonce)
    response = render(request, "login.html", status_code=status_code, next=target, error=error, login_csrf=form_csrf)
    _set_cookie(request, response, LOGIN_COOKIE, nonce, path="/login", max_age=None)
    return response


async def login_page(request: Request) -> Response:
    return _login_form(request, _safe_next(request.query_params.get("next", "/")))


async def login(request: Request) -> Response:
    """Start a session for the sign-in form's token, or without one for a request with the bearer header (which no
    other site's page can send): a script's way to a session cookie. The form's CSRF token is checked first."""
    state = console_state(request)
    form = await request.form()
    target = _safe_next(str(form.get("next") or "/"))
    if not _by_bearer(request):
        given, nonce = form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not isinstance(given, str) or not _same(given, state.sessions.login_csrf(nonce)):
            log.warning("console: sign-in without its form's CSRF token", extra={"client": _client(request)})
            return _login_form(request, target, status_code=403, error=STALE_FORM)
        token = form.get("token")
        if not isinstance(token, str) or not _same(token.strip(), state.console.token):
            log.warning("console: sign-in with a wrong token", extra={"client": _client(request)})
            return _login_form(request, target, status_code=401, error="That is not the console token.")
    session = state.sessions.start()
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session.id, path="/", max_age=int(state.console.session_lifetime))
    response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict")
    log.info("console: signed in", extra={"client": _client(request)})
    return response


async def logout_page(request: Request) -> Response:
    """A page with the Sign out button, for a browser that opens /logout (which signs no one out by itself: a link
    on another site could)."""
    who = signed_in(request)
    if who is None or not who.session_id:
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html")


async def logout(request: Request) -> Response:
    """End this browser's session: a POST with the session's CSRF token (403 without). Without a session there is
    nothing to end, and the browser is sent to /login."""
    who = signed_in(request)
    if who is not None and who.session_id:
        await _csrf_checked(request)
        console_state(request).sessions.end(who.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


routes: list[BaseRoute] = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout_page, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
