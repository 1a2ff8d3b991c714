"""`AltinnClients`: the token provider and both API clients over one shared HTTP client, built from the config.

The one module that wires the transport (`http`), the token cache (`tokens`) and the Auths the cache hands out
into API clients; the transport imports none of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from receiver.altinn.correspondence_api import CorrespondenceApi
from receiver.altinn.events_api import EventsApi
from receiver.altinn.http import AltinnHttp, PlatformSession
from receiver.altinn.keys import SigningKey, load_signing_key
from receiver.altinn.maskinporten import MaskinportenGrant
from receiver.altinn.tokens import TokenProvider
from receiver.config import Config, ConfigError


class AltinnClients:
    """Everything that talks to Altinn. Use `async with` (or `await aclose()`) inside one event loop."""

    def __init__(self, http: AltinnHttp, tokens: TokenProvider, key: SigningKey) -> None:
        self.http = http
        self.tokens = tokens
        self.key = key
        session = PlatformSession(http, tokens.altinn_auth())
        self.events = EventsApi(session)
        self.correspondence = CorrespondenceApi(session)

    @classmethod
    def from_config(cls, config: Config, *, clock: Callable[[], float] = time.time) -> AltinnClients:
        """Build from `[altinn]` and `[maskinporten]`; ConfigError if either lacks what calling Altinn needs."""
        require_altinn(config)
        mp = config.maskinporten
        key = load_signing_key(mp)
        http = AltinnHttp(
            platform_url=config.altinn.platform_url,
            maskinporten_issuer=mp.issuer,
            subscription_key=config.altinn.subscription_key,
        )
        grant = MaskinportenGrant(
            http, key, client_id=mp.client_id, issuer=mp.issuer, system_user_org=mp.system_user_org
        )
        return cls(http, TokenProvider(http, grant, mp.scopes, clock=clock), key)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AltinnClients:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def require_altinn(config: Config) -> None:
    """ConfigError naming the first key that calling Altinn needs and the config lacks."""
    if not config.altinn.platform_url:
        raise ConfigError(
            "altinn.environment", "is required to call Altinn: set environment (tt02, production, ...) or platform_url"
        )
    if not config.maskinporten.client_id:
        raise ConfigError(
            "maskinporten.client_id", "is required to call Altinn: the client id from Digdir self-service"
        )
