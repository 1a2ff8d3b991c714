"""The one HTTP client every Altinn call goes through, and what its answers mean.

- Requests go only to the configured Maskinporten and platform origins (scheme, host, port); redirects are never
  followed, so a token cannot be carried anywhere else. The check runs on every request the client sends, a retry
  made by an auth flow included.
- `Ocp-Apim-Subscription-Key` rides on platform requests when `[altinn] subscription_key` is set, never otherwise.
- Responses become the error family: 5xx/429/timeouts/connection errors → TransientError (with Retry-After),
  other 4xx → PermanentError (with ProblemDetails `title`, `detail` and `errorCode`). A 401 with errorCode 4001 is
  Altinn's authorization saying no (correspondence contract §7.5), not a refused token: `refused_by_policy`.
- Every request is counted, timed and traced by `calls.CallObserver` (through the same hooks), by API and route.
- `PlatformSession` sends platform API calls with the `httpx.Auth` it was given (`auth.BearerTokenAuth`: the Altinn
  token, and on a 401 one retry with a fresh one). This module knows nothing of where tokens come from.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry

from receiver import __version__
from receiver.altinn.calls import AltinnMetrics, CallObserver
from receiver.altinn.errors import AltinnError, PermanentError, TransientError

SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_DETAIL_LIMIT = 300
NO_ACCESS_ERROR_CODE = 4001
NO_ACCESS = (
    "the organisation has no access to this correspondence under the resource's policy (errorCode 4001: a new token "
    "will not help)"
)
_HINTS = {
    401: "the token was refused: run `altinn-receiver check` to test the Maskinporten client and the exchange",
    403: "access denied: the token lacks a scope, or the resource's policy does not grant this organisation",
}


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in, so `https://x` and `https://x:443` are one origin."""
    parts = urlsplit(str(url))
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class RefusedOrigin(PermanentError):
    """A request to a host other than the configured Maskinporten and platform hosts was stopped before sending."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"refusing to send to {host}: only the configured Maskinporten and platform hosts may receive the "
            "receiver's requests"
        )


class AltinnHttp:
    """The shared `httpx.AsyncClient`, limited to the configured origins."""

    def __init__(
        self,
        *,
        platform_url: str,
        maskinporten_issuer: str,
        subscription_key: str = "",
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`registry`: where the calls' metrics go (the receiver's; else a registry of their own)."""
        self.platform_url = platform_url.rstrip("/")
        self._platform_origin = origin(self.platform_url)
        self._allowed = {self._platform_origin, origin(maskinporten_issuer)}
        self._subscription_key = subscription_key
        self.metrics = AltinnMetrics(registry)
        self._calls = CallObserver(self.platform_url, maskinporten_issuer, self.metrics)
        self.client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": f"altinn-receiver/{__version__}"},
            event_hooks={"request": [self._admit], "response": [self._answered]},
        )

    def platform(self, path: str) -> str:
        """An absolute URL on the configured platform: the only way API URLs are made."""
        return self.platform_url + path

    def build(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        return self.client.build_request(method, url, **kwargs)

    async def send(
        self, request: httpx.Request, *, what: str, auth: httpx.Auth | None = None, stream: bool = False
    ) -> httpx.Response:
        """Send to an allowed origin, through `auth`'s flow if given; transport failures become TransientError. The
        status is not checked."""
        try:
            with transport_errors(what):
                try:
                    return await self.client.send(request, auth=auth, stream=stream)
                except BaseException as exc:  # sent but never answered (timed out, failed, cancelled), if sent
                    self._calls.failed(request, exc)
                    raise
        except RefusedOrigin as exc:
            raise PermanentError(f"{what}: {exc.message}") from None

    async def fetch(self, request: httpx.Request, *, what: str, auth: httpx.Auth | None = None) -> httpx.Response:
        """Send, read the whole body, and raise the matching AltinnError unless the answer is 2xx."""
        return await read_checked(await self.send(request, what=what, auth=auth, stream=True), what)

    async def _admit(self, request: httpx.Request) -> None:
        """httpx calls this for each request it is about to send, an auth flow's retry included: so no flow can
        carry a token to another host, and a retry carries the subscription key as the first attempt did."""
        target = origin(request.url)
        if target not in self._allowed:
            raise RefusedOrigin(target[1])
        if self._subscription_key and target == self._platform_origin:
            request.headers[SUBSCRIPTION_KEY_HEADER] = self._subscription_key
        self._calls.sent(request)

    async def _answered(self, response: httpx.Response) -> None:
        self._calls.answered(response)

    async def aclose(self) -> None:
        await self.client.aclose()


@contextmanager
def transport_errors(what: str) -> Iterator[None]:
    """httpx's timeouts and connection errors as TransientError (also around reading a streamed body)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransientError(f"{what}: timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise TransientError(f"{what}: connection failed ({type(exc).__name__}: {exc})") from None


async def read_checked(response: httpx.Response, what: str) -> httpx.Response:
    """Read and close a streamed response; AltinnError unless it is 2xx."""
    try:
        with transport_errors(what):
            await response.aread()
        await raise_for_status(response, what)
    finally:
        await response.aclose()
    return response


async def raise_for_status(response: httpx.Response, what: str) -> None:
    """Nothing for 2xx; otherwise read the body and raise the matching AltinnError."""
    if response.is_success:
        return
    with transport_errors(what):
        await response.aread()
    raise error_for(response, what)


def json_body(response: httpx.Response, what: str) -> Any:
    """The parsed JSON of a read response; PermanentError if it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        raise PermanentError(f"{what}: the answer is not JSON") from None
    except RecursionError:
        raise PermanentError(f"{what}: the answer is JSON nested too deeply to read") from None


def refused_by_policy(response: httpx.Response) -> bool:
    """A 401 (its body read) whose ProblemDetails errorCode is 4001: the caller is neither recipient nor sender under
    the resource's policy (correspondence contract §7.5). The token was good; another would be refused the same way."""
    if response.status_code != httpx.codes.UNAUTHORIZED:
        return False
    return str(problem_details(response)[2]) == str(NO_ACCESS_ERROR_CODE)


def error_for(response: httpx.Response, what: str) -> AltinnError:
    status = response.status_code
    title, reason, error_code = problem_details(response)
    detail = "".join(f": {part}" for part in (title, reason) if part)
    if refused_by_policy(response):  # the receiver's words first: a reason is cut to 300 characters in the store
        return PermanentError(f"{NO_ACCESS} — {what}: HTTP {status}{detail}", status, title, error_code)
    if error_code is not None:
        detail += f" (errorCode {error_code})"
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        when = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return TransientError(f"{what}: HTTP {status}{detail}{when}", retry_after=retry_after, status=status)
    if response.is_redirect:
        detail += " (redirects are not followed)"
    hint = f" — {_HINTS[status]}" if status in _HINTS else ""
    return PermanentError(f"{what}: HTTP {status}{detail}{hint}", status=status, title=title, error_code=error_code)


def problem_details(response: httpx.Response) -> tuple[str | None, str | None, int | str | None]:
    """(title, detail, errorCode) from ProblemDetails, a Maskinporten OAuth error, an Events JSON string, or short
    text. `detail` is ProblemDetails' reason when it adds to the title (Altinn's titles are often just the status
    text, "Bad Request", and the reason is in `detail`)."""
    text = response.text.strip()
    if not text:
        return None, None, None
    try:
        body = json.loads(text)
    except ValueError:
        return _short(text), None, None
    if isinstance(body, str):
        return _short(body), None, None
    if not isinstance(body, dict):
        return _short(text), None, None
    if "error" in body and isinstance(body["error"], str):  # OAuth: {"error", "error_description"}
        return _short(str(body.get("error_description") or body["error"])), None, body["error"]
    title, detail = body.get("title"), body.get("detail")
    if not title or detail == title:
        title, detail = title or detail, None
    if isinstance(body.get("errors"), dict) and body["errors"]:
        first_field, messages = next(iter(body["errors"].items()))
        title = f"{title} {first_field}: {messages[0] if isinstance(messages, list) and messages else messages}"
    code = body.get("errorCode")
    return (
        _short(str(title)) if title else None,
        _short(str(detail)) if detail else None,
        code if isinstance(code, int | str) else None,
    )


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "…"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


class PlatformSession:
    """Calls to the platform APIs: URLs built from the configured base, every request sent with `auth` (one Auth
    per token scope set; see `TokenProvider.altinn_auth`)."""

    def __init__(self, http: AltinnHttp, auth: httpx.Auth) -> None:
        self.http = http
        self.auth = auth

    async def request(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """The response to an authorised request (body read); AltinnError unless it is 2xx."""
        return await read_checked(await self._send(method, path, what, kwargs), what)

    @asynccontextmanager
    async def stream(self, method: str, path: str, *, what: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """An authorised 2xx response whose body is still to be read (`aiter_bytes` inside `transport_errors`)."""
        response = await self._send(method, path, what, kwargs)
        try:
            await raise_for_status(response, what)
            yield response
        finally:
            await response.aclose()

    async def _send(self, method: str, path: str, what: str, kwargs: dict[str, Any]) -> httpx.Response:
        request = self.http.build(method, self.http.platform(path), **kwargs)
        return await self.http.send(request, what=what, auth=self.auth, stream=True)
