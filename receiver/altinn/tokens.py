"""Maskinporten and Altinn tokens, cached per scope set (correspondence contract §3.2).

- An Altinn token is a Maskinporten token exchanged at `GET {platform}/authentication/api/v1/exchange/maskinporten`;
  the answer is the JWT, plain or JSON-quoted. Its `exp` (read unverified) decides how long it is kept.
- A token is renewed before it expires — Altinn's APIs allow no clock skew — by a quarter of its lifetime, at most
  a minute ahead.
- Concurrent callers needing the same token share one grant/exchange (a lock per scope set).
- `invalidate(token)` drops a token an API refused (401), so the next caller gets a fresh one.
- Tokens obtained and attempts that failed are counted by kind (`altinn_receiver_token_grants_total`,
  `altinn_receiver_token_refresh_failures_total`).
- `altinn_auth(scopes)` is the `BearerTokenAuth` for platform calls needing one scope set; the exchange sends its
  Maskinporten token through the same kind of Auth, so both 401 retries are one mechanism.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from receiver.altinn.auth import BearerTokenAuth
from receiver.altinn.errors import PermanentError
from receiver.altinn.http import AltinnHttp
from receiver.altinn.maskinporten import MaskinportenGrant
from receiver.altinn.models import Token, unverified_claims
from receiver.config import ConfigError

EXCHANGE_PATH = "/authentication/api/v1/exchange/maskinporten"
MAX_REFRESH_MARGIN = 60.0
REFRESH_FRACTION = 0.25

ScopeKey = tuple[str, ...]
log = logging.getLogger(__name__)


def refresh_at(token: Token) -> float:
    """When a cached token stops being handed out: ahead of expiry by a quarter of its lifetime, at most 60 s."""
    return token.expires_at - min(MAX_REFRESH_MARGIN, REFRESH_FRACTION * max(token.lifetime, 0.0))


class ScopedTokens:
    """One kind of token for one scope set, as the `TokenSource` a `BearerTokenAuth` draws on."""

    def __init__(
        self,
        obtain: Callable[[Sequence[str] | None], Awaitable[Token]],
        scopes: Sequence[str] | None,
        forget: Callable[[str], None],
    ) -> None:
        self._obtain = obtain
        self._scopes = scopes
        self._forget = forget

    async def get(self) -> str:
        return (await self._obtain(self._scopes)).value

    def invalidate(self, token: str) -> None:
        self._forget(token)


class TokenProvider:
    def __init__(
        self,
        http: AltinnHttp,
        grant: MaskinportenGrant,
        default_scopes: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.grant = grant
        self.default_scopes = tuple(default_scopes)
        self.clock = clock
        self._maskinporten: dict[ScopeKey, Token] = {}
        self._altinn: dict[ScopeKey, Token] = {}
        self._locks: dict[tuple[str, ScopeKey], asyncio.Lock] = {}

    def scope_key(self, scopes: Sequence[str] | None) -> ScopeKey:
        """The cache key: the scope set, sorted. None means `[maskinporten] scopes`."""
        key = tuple(sorted({s for s in (self.default_scopes if scopes is None else scopes) if s}))
        if not key:
            raise ConfigError(
                "maskinporten.scopes",
                'is empty: list the scopes the client was granted, e.g. ["altinn:events.subscribe", '
                '"altinn:correspondence.read"]',
            )
        return key

    async def maskinporten(self, scopes: Sequence[str] | None = None) -> Token:
        key = self.scope_key(scopes)
        return await self._cached(self._maskinporten, "maskinporten", key, lambda: self._grant(key))

    async def altinn(self, scopes: Sequence[str] | None = None) -> Token:
        key = self.scope_key(scopes)
        return await self._cached(self._altinn, "altinn", key, lambda: self._exchange(key))

    async def maskinporten_token(self, scopes: Sequence[str] | None = None) -> str:
        return (await self.maskinporten(scopes)).value

    async def altinn_token(self, scopes: Sequence[str] | None = None) -> str:
        return (await self.altinn(scopes)).value

    def altinn_auth(self, scopes: Sequence[str] | None = None) -> BearerTokenAuth:
        """The Auth for platform calls that need `scopes` (None: `[maskinporten] scopes`). The scope set is resolved
        on each request, so a bad one surfaces when a call is made, as it always has."""
        return BearerTokenAuth(ScopedTokens(self.altinn, scopes, self.invalidate))

    def invalidate(self, token: str) -> None:
        """Forget `token` wherever it is cached (an API answered 401 to it)."""
        for cache in (self._altinn, self._maskinporten):
            for key in [k for k, cached in cache.items() if cached.value == token]:
                del cache[key]

    async def _cached(
        self, cache: dict[ScopeKey, Token], kind: str, key: ScopeKey, obtain: Callable[[], Awaitable[Token]]
    ) -> Token:
        token = cache.get(key)
        if token is not None and self.clock() < refresh_at(token):
            return token
        async with self._locks.setdefault((kind, key), asyncio.Lock()):
            token = cache.get(key)  # whoever held the lock may have just renewed it
            if token is not None and self.clock() < refresh_at(token):
                return token
            try:
                token = await obtain()
            except Exception:
                self.http.metrics.token_failures.labels(kind).inc()
                raise
            self.http.metrics.token_grants.labels(kind).inc()
            cache[key] = token
            log.debug("%s token obtained", kind, extra={"scopes": " ".join(key), "expires_in": round(token.lifetime)})
            return token

    async def _grant(self, key: ScopeKey) -> Token:
        return await self.grant.request(key, self.clock())

    async def _exchange(self, key: ScopeKey) -> Token:
        """Exchange the Maskinporten token; a 401 means it went stale: the Auth gets a new one and tries once more."""
        url = self.http.platform(EXCHANGE_PATH)
        what = f"Altinn token exchange at {url}"
        bearer = BearerTokenAuth(ScopedTokens(self.maskinporten, key, self.invalidate))
        response = await self.http.fetch(self.http.build("GET", url), what=what, auth=bearer)
        value = response.text.strip().strip('"')
        claims = unverified_claims(value)
        if claims is None or not isinstance(claims.get("exp"), int | float):
            raise PermanentError(f"{what}: the answer is not a JWT with an exp claim")
        return Token(value, expires_at=float(claims["exp"]), obtained_at=self.clock(), claims=claims)
