"""`forward_http`: POST the event to the agency's system as a CloudEvent, the message every forward handler sends
(handlers/envelope.py: the fetched correspondence as `data`, with `localPath` on its downloaded attachments; the
event's own `data` when nothing was fetched).

`mode = "structured"` sends one JSON object (`application/cloudevents+json`); `"binary"` sends the attributes as
`ce-*` headers and `data` as the JSON body. 2xx is done; 429, 5xx, timeouts and connection errors are retried
(honouring Retry-After); any other answer is permanent. Redirects are not followed. Header values never reach a
log line or an error: they are usually credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event

from handlers import Context, Duration, Event, OptionError, Permanent, RetryLater, setting
from handlers.envelope import encode
from handlers.forwarding import Forwarder, location
from receiver.altinn import parse_retry_after

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
RESERVED_HEADERS = ("content-type", "content-length", "host")


class ForwardHttp(Forwarder):
    name = "forward_http"

    @dataclass(frozen=True)
    class Options:
        url: str = setting(secret=True)
        """Secret: its query or user info may hold a credential (log lines show it without them)."""
        mode: Literal["structured", "binary"] = "structured"
        headers: dict[str, str] = setting(default_factory=dict, secret=True)
        """Extra request headers, e.g. Authorization = "Bearer ${FORWARD_TOKEN}" (expanded from the environment),
        or each from a file: headers_file = { Authorization = "/run/secrets/forward-authorization" }."""
        timeout: Duration = 10.0

        def __post_init__(self) -> None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise OptionError("url", f"must be an absolute https or http URL, got {location(self.url)!r}")
            for name in self.headers:
                lowered = name.lower()
                if not _TOKEN.fullmatch(name) or lowered in RESERVED_HEADERS or lowered.startswith("ce-"):
                    raise OptionError(
                        f"headers.{name}",
                        "is not a header this handler lets you set (Content-Type and ce-* come from the event)",
                    )
            if self.timeout <= 0:
                raise OptionError("timeout", "must be longer than zero")

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def forward(self, event: Event, ctx: Context[ForwardHttp.Options]) -> None:
        options = ctx.options
        message: HTTPMessage = encode(event, ctx, to_binary_event if options.mode == "binary" else to_structured_event)
        where = location(options.url)
        try:
            response = await self.client().post(
                options.url,
                content=message.body,
                headers={**message.headers, **options.headers},
                timeout=options.timeout,
            )
        except httpx.TimeoutException:
            raise RetryLater(f"forwarding to {where}: no answer within {options.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise RetryLater(f"forwarding to {where}: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            ctx.log.info("forwarded", extra={"target": where, "http_status": status, "mode": options.mode})
            return
        if status == 429 or status >= 500:
            after = parse_retry_after(response.headers.get("retry-after"))
            raise RetryLater(f"forwarding to {where}: HTTP {status}", after=after, http_status=status)
        raise Permanent(
            f"forwarding to {where}: HTTP {status} (not retried: fix the target or the config)", http_status=status
        )
