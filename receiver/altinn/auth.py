"""`BearerTokenAuth`: a bearer token on every request, and one retry with a fresh token when it is refused (401) —
unless the 401 is Altinn's authorization saying no (errorCode 4001, correspondence contract §7.5): the token is then
kept and nothing is retried.

An `httpx.Auth` in the shape of httpx's own flows (`response = yield request`), so the transport (`http.py`) only
ever sees an `httpx.Auth` and never imports the token cache; the cache (`tokens.py`) hands out one Auth per token
kind and scope set.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx

from receiver.altinn.http import refused_by_policy


class TokenSource(Protocol):
    """Tokens of one kind (Maskinporten or Altinn) for one scope set."""

    async def get(self) -> str:
        """A token still valid by the source's clock: cached, or obtained now."""
        ...

    def invalidate(self, token: str) -> None:
        """Forget `token` (it was refused), so the next `get` obtains a new one."""
        ...


class BearerTokenAuth(httpx.Auth):
    """`Authorization: Bearer <token>` from `source`. On a 401 the token is invalidated and the very same request
    object (same URL, body and other headers) is sent once more with a fresh token. The answer to that is the
    response, so a second 401 reaches the caller's error mapping as a PermanentError. A 401 with errorCode 4001 is
    the response at once, the token kept."""

    # The retry sends the body again: a streamed body (a multipart upload) is read into memory before the first send.
    requires_request_body = True

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.requires_request_body:
            await request.aread()
        token = await self.source.get()
        response = yield _with_bearer(request, token)
        if response.status_code != httpx.codes.UNAUTHORIZED:
            return
        # Reading the refusal hands its connection back to the pool before getting a new token may need one.
        await response.aread()
        if refused_by_policy(response):
            return  # the policy refused this organisation, not the token: a new grant would be refused alike
        self.source.invalidate(token)
        yield _with_bearer(request, await self.source.get())

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("BearerTokenAuth gets its tokens asynchronously: use it with an httpx.AsyncClient")


def _with_bearer(request: httpx.Request, token: str) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    return request
