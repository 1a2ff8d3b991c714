"""A record of the requests the simulator served, for tests to check what a client sent (never token values; a
bearer token's `scope` claim, which is no secret, so tests can see which scope set a call carried)."""

from __future__ import annotations

from collections import deque
from typing import Any

import jwt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.observability.logs import redact
from receiver.timeutil import now_iso

# Headers whose presence (never value) is recorded.
HEADERS_OF_INTEREST = ("authorization", "ocp-apim-subscription-key", "accept", "content-type", "user-agent")
MAX_ENTRIES = 2000


class RequestLog:
    def __init__(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)


class RequestLogMiddleware:
    """Records method, path (query redacted), status, which headers of interest were present, and the bearer
    token's `scope` claim (None without a bearer JWT)."""

    def __init__(self, app: ASGIApp, log: RequestLog, exempt_prefix: str = "/_sim") -> None:
        self.app = app
        self.log = log
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        present = {name.decode("latin-1").lower() for name, _ in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        entry: dict[str, Any] = {
            "at": now_iso(),
            "method": scope["method"],
            "path": scope["path"] + (redact("?" + query) if query else ""),
            "headers": {name: name in present for name in HEADERS_OF_INTEREST},
            "scope": bearer_scope(scope["headers"]),
            "status": None,
        }
        self.log.entries.append(entry)

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, record_status)


def bearer_scope(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The `scope` claim of the request's bearer token, read without verifying it; None if there is none."""
    value = next((v.decode("latin-1") for k, v in headers if k.lower() == b"authorization"), "")
    if value[:7].lower() != "bearer ":
        return None
    try:
        claims = jwt.decode(value[7:].strip(), options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    scope = claims.get("scope")
    return scope if isinstance(scope, str) else None
