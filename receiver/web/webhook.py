"""The webhook: `POST {receiver.path}?code=...` from Altinn Events, answered 200 only after the event is committed.

A plain ASGI endpoint (no Request object) because this is the hot path. The checks run cheapest first and each
answer says what was wrong: 403 (source address outside `trusted_networks`), 401 (wrong or missing code, no detail),
503 (draining), 415 (content type), 413 (body over `max_body_bytes`, read no further), 400 (not one valid CloudEvent,
naming the attribute), 503 + Retry-After (the store could not commit), 500 (the store refused this one event's
values; the events beside it are stored), 200 (committed, or a repeated id).

While traces are on, each request is a server span (`POST /events`, with the event's id, type and outcome), and a
new event is stored with that span's traceparent, so that its dispatch links back to it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from receiver.config import ReceiverConfig
from receiver.observability import tracing
from receiver.observability.logs import query_fields
from receiver.runtime import Runtime
from receiver.store.errors import EventRefused, StoreError
from receiver.web.cloudevent import VALIDATION_TYPE, InvalidEvent, from_binary, from_structured, subscription_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

STRUCTURED_TYPES = frozenset({"application/json", "application/cloudevents+json"})
RETRY_AFTER_SECONDS = 5
# Per-request log fields the access log picks up (see receiver.app.AccessLog).
LOG_FIELDS = "receiver.log"

_PROBLEM = [(b"content-type", b"application/problem+json")]
_RETRY = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
_CLOSE = [(b"connection", b"close")]


def _accepted(outcome: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = b'{"status":"%s"}' % outcome.encode()
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))], body


# The answers after a commit, built once: the hot path sends them as they are.
_ACCEPTED = {outcome: _accepted(outcome) for outcome in ("stored", "duplicate", "validation")}


class ClientGone(Exception):
    """The client disconnected before sending the whole body: there is nobody to answer."""


def problem(status: int, title: str, detail: str, **extra: Any) -> bytes:
    """A small RFC 9457 problem body."""
    return json.dumps({"title": title, "status": status, "detail": detail, **extra}).encode()


def parse_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...] | None:
    """`forwarded_allow_ips` as networks; None means "*" (every peer is a trusted proxy)."""
    if "*" in values:
        return None
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def in_networks(address: str, networks: tuple[IPNetwork, ...] | None) -> bool:
    if networks is None:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class Ingest:
    """The ASGI endpoint. `runtime` is attached by the app's lifespan once the store is open."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.secrets = tuple(secret.encode() for secret in config.secrets)
        self.max_body = config.max_body_bytes
        self.trusted = config.trusted_networks
        self.proxies = parse_networks(config.forwarded_allow_ips) if config.forwarded_allow_ips else ()
        self.runtime: Runtime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.respond(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one request; returns the status sent (0 when the client left before sending its body)."""
        if tracing.on():
            return await self.respond_traced(scope, receive, send)
        return await self.respond_untraced(scope, receive, send)

    async def respond_traced(self, scope: Scope, receive: Receive, send: Send) -> int:
        """`respond_untraced` inside a server span; the access line gets the span's ids. Never the query string."""
        route = scope["path"]
        attributes = {"http.request.method": scope["method"], "http.route": route, "url.path": route}
        with tracing.span(f"{scope['method']} {route}", kind="server", attributes=attributes) as span:
            status = await self.respond_untraced(scope, receive, send)
            fields = scope[LOG_FIELDS]
            span.set({"http.response.status_code": status, "altinn_receiver.outcome": fields.get("outcome", "")})
            if "event_id" in fields:
                span.set({"cloudevents.event_id": fields["event_id"], "cloudevents.event_type": fields["type"]})
            if status >= 500:
                span.fail(f"HTTP {status}: {fields.get('outcome', '')}")
            fields.update(tracing.log_ids())
        return status

    async def respond_untraced(self, scope: Scope, receive: Receive, send: Send) -> int:
        started = time.perf_counter()
        fields: dict[str, Any] = {}
        scope[LOG_FIELDS] = fields
        try:
            status, headers, body = await self.handle(scope, receive, fields)
        except ClientGone:
            fields["outcome"] = "client_gone"
            return 0
        if status != 200:
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        runtime = self.runtime
        if runtime is not None:
            if status == 200:
                runtime.metrics.ack_seconds.observe(time.perf_counter() - started)
            else:
                reason = fields.get("outcome")
                if reason in runtime.metrics.rejected_by_reason:
                    runtime.metrics.rejected_by_reason[reason].inc()
        return status

    async def handle(
        self, scope: Scope, receive: Receive, fields: dict[str, Any]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if scope["method"] != "POST":
            fields["outcome"] = "method"
            return 405, [(b"allow", b"POST"), *_PROBLEM], problem(405, "Method not allowed", "send events with POST")
        headers = scope["headers"]
        if self.trusted and not self.trusted_source(scope, headers):
            fields["outcome"] = "forbidden"
            return 403, [], b""
        if self.secrets and not self.code_matches(scope["query_string"]):
            fields["outcome"] = "unauthorized"
            return 401, [], b""
        runtime = self.runtime
        if runtime is None or runtime.draining:
            fields["outcome"] = "draining"
            detail = "the receiver is shutting down; try again shortly"
            return 503, [*_RETRY, *_PROBLEM], problem(503, "Service unavailable", detail)
        runtime.enter()
        try:
            return await self.receive_event(runtime, headers, receive, fields)
        finally:
            runtime.leave()

    def trusted_source(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether the source address is in `trusted_networks`, believing X-Forwarded-For only from proxies."""
        client = scope.get("client")
        address = client[0] if client else ""
        if self.proxies != () and in_networks(address, self.proxies):
            forwarded = [value for name, value in headers if name == b"x-forwarded-for"]
            if forwarded:
                # Walk from the nearest hop outwards; the first address that is not a trusted proxy is the source.
                hops = [hop.strip() for hop in b",".join(forwarded).decode("latin-1").split(",") if hop.strip()]
                for hop in reversed(hops):
                    address = hop
                    if not in_networks(hop, self.proxies):
                        break
        return in_networks(address, self.trusted)

    def code_matches(self, query_string: bytes) -> bool:
        """Constant-time comparison of `?code=` against every accepted secret (no early exit)."""
        candidate = query_value(query_string, "code")
        matched = False
        for secret in self.secrets:
            matched |= hmac.compare_digest(candidate, secret)
        return matched

    async def receive_event(
        self, runtime: Runtime, headers: list[tuple[bytes, bytes]], receive: Receive, fields: dict[str, Any]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        content_type = ""
        length = -1
        binary = False
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"ce-specversion":
                binary = True
        if not binary and content_type.split(";", 1)[0].strip().lower() not in STRUCTURED_TYPES:
            fields["outcome"] = "unsupported_media_type"
            detail = "send one CloudEvent as application/json or application/cloudevents+json (or in binary mode)"
            return 415, _PROBLEM, problem(415, "Unsupported media type", detail)
        body = None if length > self.max_body else await read_body(receive, self.max_body)
        if body is None:
            fields["outcome"] = "too_large"
            detail = f"the body is larger than {self.max_body} bytes (receiver.max_body_bytes)"
            return 413, [*_CLOSE, *_PROBLEM], problem(413, "Payload too large", detail)
        try:
            if binary:
                ce_headers = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in headers]
                event = from_binary(ce_headers, content_type, body)
            else:
                event = from_structured(body)
        except InvalidEvent as exc:
            fields["outcome"] = "invalid"
            fields["attribute"] = exc.attribute
            return 400, _PROBLEM, problem(400, "Invalid CloudEvent", str(exc), attribute=exc.attribute)
        fields.update(event_id=event.id, type=event.type, resource=event.resource)
        try:
            if event.type == VALIDATION_TYPE:
                await runtime.writer.record_validation(event.id, subscription_id(event.source), event.source)
                runtime.metrics.validations.inc()
                fields["outcome"] = "validation"
            elif await runtime.writer.insert_event(event, "push", tracing.traceparent()):
                runtime.metrics.received_by_channel["push"].inc()
                runtime.notify_new_events()
                fields["outcome"] = "stored"
            else:
                runtime.metrics.duplicates.inc()
                fields["outcome"] = "duplicate"
        except EventRefused as exc:
            fields["outcome"] = "store_refused"
            fields["error"] = str(exc)
            return 500, _PROBLEM, problem(500, "Event not stored", f"{exc}: sending it again will not change that")
        except StoreError as exc:
            fields["outcome"] = "store_unavailable"
            fields["error"] = str(exc)
            detail = f"the event was not stored ({exc}); send it again later"
            return 503, [*_RETRY, *_PROBLEM], problem(503, "Service unavailable", detail)
        return 200, *_ACCEPTED[fields["outcome"]]


def query_value(query_string: bytes, name: str) -> bytes:
    """The first value of `name` in a query string (b"" when absent), read by `query_fields`: the access log reads
    the query the same way to redact it."""
    wanted = name.encode()
    return next((value for field, value in query_fields(query_string) if field == wanted), b"")


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` (the rest is never read)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            return None
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks) if size <= limit else None
