"""The console as a Starlette app: the sign-in pages, the static files and every page module's `routes`, behind
the sign-in check, the access log and the headers that keep its pages to themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.app import AccessLog
from receiver.config import Config
from receiver.console import auth
from receiver.console.pages import correspondences, dead, events, overview, subscriptions
from receiver.console.render import render
from receiver.console.sessions import Sessions
from receiver.console.state import ConsoleState
from receiver.runtime import Runtime
from receiver.web.connections import ConnectionGuard, refusal

PAGES = (overview, events, dead, correspondences, subscriptions)
"""The page modules, each with its `routes`."""
MAX_CONNECTIONS = 64
"""Connections the console holds at once (a few operators' tabs, each with its live stream): beyond it a new one is
answered 503 at once, so that the process's file descriptors stay the webhook's whoever reaches the console."""

SECURITY_HEADERS = [
    # Everything a page uses comes from the console itself: no inline script, nothing from elsewhere, no framing.
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ConsoleApp(Starlette):
    """The console's Starlette app, with the limits on its connections that its server's protocol finds here
    (`receiver.web.connections`: a request must arrive within `[receiver] read_timeout`, at most `MAX_CONNECTIONS`
    open)."""

    def __init__(self, config: Config, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        limits = replace(config.receiver, max_connections=MAX_CONNECTIONS)
        self.connections = ConnectionGuard(
            limits, refusal(b"the console holds as many connections as it may; try again")
        )


async def error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", status_code=exc.status_code, status=exc.status_code, message=exc.detail)


def create_console_app(runtime: Callable[[], Runtime | None], config: Config) -> ConsoleApp:
    """The console for the receiver whose runtime `runtime()` gives (None while it opens); `config.console` set."""
    if config.console is None:
        raise ValueError("the console needs a [console] section")
    routes: list[BaseRoute] = [
        *auth.routes,
        Mount("/static", StaticFiles(packages=[("receiver.console", "static")]), name="static"),
    ]
    for page in PAGES:
        routes.extend(page.routes)
    app = ConsoleApp(
        config,
        routes=routes,
        middleware=[Middleware(AccessLog), Middleware(SecurityHeaders), Middleware(auth.RequireSignIn)],
        exception_handlers={HTTPException: error_page},
    )
    sessions = Sessions(config.console.session_lifetime)
    folders = correspondences.attachment_folders(config)
    app.state.console = ConsoleState(config, config.console, runtime, sessions, folders)
    return app
