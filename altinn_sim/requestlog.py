"""A record of the requests the simulator served, for tests to check what a client sent (never token values)."""

from __future__ import annotations

from collections import deque
from typing import Any

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
    """Records method, path (query redacted), status and which headers of interest were present."""

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
            "status": None,
        }
        self.log.entries.append(entry)

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, record_status)
