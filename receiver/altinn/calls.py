"""What the Altinn clients tell about their calls: a count and a duration per API and status, tokens obtained and
refused, and a client span per HTTP request.

`CallObserver` is driven by the shared client's httpx event hooks (`http.py`), so it sees every request httpx sends,
an auth flow's retry and a token grant included, and no call can bypass it. It names a call by its API and its route
template, never its URL: a URL can carry a query, and the subscription endpoint's body carries the webhook's code.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

from receiver.observability import tracing

APIS = ("maskinporten", "authentication", "events", "correspondence", "other")
"""The `api` label: Maskinporten's token endpoint, then the platform's APIs by the first segment of their path
(`authentication` is the token exchange)."""
TOKEN_KINDS = ("maskinporten", "altinn")
SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ID_SEGMENT = re.compile(r"[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CALL = "altinn_receiver.call"
"""The key in `request.extensions` under which a sent request keeps its start time and span until it is answered."""


class AltinnMetrics:
    """The Altinn clients' metrics, on the receiver's registry (a registry of their own when none is given: a
    command's calls are counted where nobody scrapes)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "altinn_receiver_altinn_requests",
            "HTTP requests to Altinn and Maskinporten, by API and HTTP status (timeout, error or cancelled when no "
            "answer came).",
            ["api", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "altinn_receiver_altinn_request_seconds",
            "Time from sending a request to Altinn or Maskinporten to the answer's headers, by API.",
            ["api"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.token_grants = Counter(
            "altinn_receiver_token_grants",
            "Tokens obtained: Maskinporten grants and Altinn token exchanges.",
            ["kind"],
            registry=registry,
        )
        self.token_failures = Counter(
            "altinn_receiver_token_refresh_failures",
            "Attempts to obtain a token (a Maskinporten grant or an Altinn exchange) that failed.",
            ["kind"],
            registry=registry,
        )
        for kind in TOKEN_KINDS:
            self.token_grants.labels(kind)
            self.token_failures.labels(kind)


def route_template(path: str) -> str:
    """A request path with its ids (numbers, UUIDs) as `{id}`: the route, whose values are few."""
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(segment) else segment for segment in path.split("/"))


class CallObserver:
    """Counts, times and traces each request the Altinn client sends."""

    def __init__(self, platform_url: str, maskinporten_issuer: str, metrics: AltinnMetrics) -> None:
        self.metrics = metrics
        self._platform_path = urlsplit(platform_url).path.rstrip("/")
        issuer = httpx.URL(maskinporten_issuer)
        self._token_url = (issuer.scheme, issuer.host, issuer.port, issuer.path.rstrip("/") + "/token")

    def api(self, url: httpx.URL) -> str:
        if (url.scheme, url.host, url.port, url.path) == self._token_url:
            return "maskinporten"
        first = url.path.removeprefix(self._platform_path).lstrip("/").split("/", 1)[0]
        return first if first in APIS else "other"

    def sent(self, request: httpx.Request) -> None:
        """httpx is about to send `request` (its headers final): start the clock and its span, whose traceparent
        goes along as W3C trace context."""
        api = self.api(request.url)
        route = route_template(request.url.path)
        span = tracing.client_span(
            f"{request.method} {route}",
            {
                "http.request.method": request.method,
                "url.template": route,
                "server.address": request.url.host,
                "server.port": request.url.port or {"https": 443, "http": 80}.get(request.url.scheme, 0),
                "altinn_receiver.api": api,
            },
        )
        if span.traceparent:
            request.headers["traceparent"] = span.traceparent
        request.extensions[_CALL] = (api, time.perf_counter(), span)

    def answered(self, response: httpx.Response) -> None:
        """The answer's headers arrived."""
        call = response.request.extensions.pop(_CALL, None)
        if call is None:
            return
        status = response.status_code
        span = call[2]
        span.set({"http.response.status_code": status})
        if status >= 400:
            span.fail(f"HTTP {status}", str(status))
        self._count(call, str(status))

    def failed(self, request: httpx.Request, error: BaseException) -> None:
        """No answer came to `request`: a timeout, a connection failure, or the caller was cancelled."""
        call = request.extensions.pop(_CALL, None)
        if call is None:
            return
        status = _failure_status(error)
        call[2].fail(status, type(error).__qualname__)
        self._count(call, status)

    def _count(self, call: Any, status: str) -> None:
        api, started, span = call
        self.metrics.requests.labels(api, status).inc()
        self.metrics.seconds.labels(api).observe(time.perf_counter() - started)
        span.end()


def _failure_status(error: BaseException) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    return "error" if isinstance(error, Exception) else "cancelled"
