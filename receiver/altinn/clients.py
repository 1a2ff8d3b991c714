"""`AltinnClients`: the token provider and both API clients over one shared HTTP client, built from the config.

The one module that wires the transport (`http`), the token cache (`tokens`) and the Auths the cache hands out
into API clients; the transport imports none of them. Each family of calls has its own scope set
(`receiver.scopes`: correspondence contract §1.1 and §7.1), so its own Auth and `PlatformSession`: one cached token,
one grant and one exchange per set, never every configured scope in one token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from prometheus_client import CollectorRegistry

from receiver.altinn.correspondence_api import CorrespondenceApi
from receiver.altinn.events_api import EventsApi
from receiver.altinn.http import AltinnHttp, PlatformSession
from receiver.altinn.keys import SigningKey, load_signing_key
from receiver.altinn.maskinporten import MaskinportenGrant
from receiver.altinn.tokens import ScopeKey, TokenProvider
from receiver.config import Config, ConfigError, token_scope_sets
from receiver.scopes import EVENTS, SENDER, correspondence_purpose


class AltinnClients:
    """Everything that talks to Altinn. Use `async with` (or `await aclose()`) inside one event loop.

    `scope_sets` is {purpose: scopes} (`receiver.scopes.scope_sets`); `role` picks the family of the
    Correspondence reads and actions: a recipient's, or a service owner's as the sender of what it reads."""

    def __init__(
        self,
        http: AltinnHttp,
        tokens: TokenProvider,
        key: SigningKey,
        scope_sets: Mapping[str, Sequence[str]],
        role: str,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.key = key
        self.scope_sets: dict[str, ScopeKey] = {purpose: tokens.scope_key(s) for purpose, s in scope_sets.items()}
        sessions: dict[ScopeKey, PlatformSession] = {}
        for scopes in self.scope_sets.values():
            if scopes not in sessions:
                sessions[scopes] = PlatformSession(http, tokens.altinn_auth(scopes))
        self.sessions = {purpose: sessions[scopes] for purpose, scopes in self.scope_sets.items()}
        self.events = EventsApi(self.sessions[EVENTS])
        self.correspondence = CorrespondenceApi(
            self.sessions[correspondence_purpose(role)], sender=self.sessions.get(SENDER)
        )

    @classmethod
    def from_config(
        cls, config: Config, *, clock: Callable[[], float] = time.time, registry: CollectorRegistry | None = None
    ) -> AltinnClients:
        """Build from `[altinn]` and `[maskinporten]`; ConfigError if either lacks what calling Altinn needs.
        `registry`: where the calls are counted (the receiver's metrics)."""
        require_altinn(config)
        scope_sets = token_scope_sets(config)
        mp = config.maskinporten
        key = load_signing_key(mp)
        http = AltinnHttp(
            platform_url=config.altinn.platform_url,
            maskinporten_issuer=mp.issuer,
            subscription_key=config.altinn.subscription_key,
            registry=registry,
        )
        grant = MaskinportenGrant(
            http, key, client_id=mp.client_id, issuer=mp.issuer, system_user_org=mp.system_user_org
        )
        return cls(http, TokenProvider(http, grant, mp.scopes, clock=clock), key, scope_sets, config.altinn.role)

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
