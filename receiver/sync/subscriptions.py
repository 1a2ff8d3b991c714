"""Owning the Altinn subscriptions: register the configured ones at startup, see them validated, retire old ones.

- The endpoint is `[receiver] public_url` + `?code=` + the current secret, byte-for-byte the same on every start,
  so Altinn's idempotent POST returns the same subscription (events contract §1.1).
- Altinn stops retrying its validation push after a few minutes; while a subscription is unvalidated it is POSTed
  again (a new validation push) every `[catchup] interval`.
- Rotating the code: the subscription for the new URL is created at once; one whose endpoint carries an old code is
  deleted only once its successor has been validated for `cache_lifetime` (Altinn caches subscriptions for an hour).
- "Our" subscriptions are those whose endpoint equals `public_url` when compared without the query string.

While traces are on, each call of `SubscriptionManager` to Altinn (register, refresh, survey, delete) is a span.

The code never leaves this module unredacted: outputs show `?code=***`, the store keeps a fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from prometheus_client import Gauge

from receiver.altinn import AltinnClients, AltinnError, PermanentError
from receiver.config import Config, ReceiverConfig, SubscriptionConfig, check_resource_urn
from receiver.durations import format_duration
from receiver.observability import tracing
from receiver.observability.logs import redact
from receiver.runtime import stop_task
from receiver.store import state
from receiver.store.errors import StoreError
from receiver.store.interface import Database
from receiver.sync.lease import SyncLease, first_turn, held
from receiver.timeutil import now, parse_iso, to_iso

if TYPE_CHECKING:
    from receiver.altinn import Subscription
    from receiver.runtime import Runtime

log = logging.getLogger("receiver.subscriptions")

CACHE_LIFETIME = 3600.0
"""Altinn caches subscription lookups for up to an hour per pod (events contract §4.2)."""

# --- the endpoint and its code ---


def endpoint_url(receiver: ReceiverConfig, code: str | None = None) -> str:
    """Where Altinn should push: `public_url?code=<url-encoded code>` (the current secret unless given)."""
    code = receiver.secret if code is None else code
    return f"{receiver.public_url}?code={quote(code, safe='')}" if code else receiver.public_url


def without_query(url: str) -> str:
    """The URL without query and fragment, normalised as .NET's `Uri.AbsoluteUri` would (case, default port)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == {"https": 443, "http": 80}.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def code_of(url: str) -> str:
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get("code", [])
    return values[0] if values else ""


def fingerprint(code: str) -> str:
    """A short, stable name for a code that does not reveal it (for the store and for telling codes apart)."""
    return hashlib.sha256(code.encode()).hexdigest()[:12] if code else ""


def code_standing(url: str, receiver: ReceiverConfig) -> str:
    """`current`, `previous` (in previous_secrets, still accepted) or `unknown` (no longer accepted)."""
    code = code_of(url)
    if hmac.compare_digest(code.encode(), receiver.secret.encode()):
        return "current"
    if any(hmac.compare_digest(code.encode(), old.encode()) for old in receiver.previous_secrets):
        return "previous"
    return "unknown"


def shown(url: str) -> str:
    """An endpoint fit for output: the code as `***`."""
    return redact(url)


def public_url_warning(public_url: str) -> str | None:
    """Why Altinn will refuse `public_url`, if it is plain http on a host other than loopback."""
    parts = urlsplit(public_url)
    if parts.scheme == "https":
        return None
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (
        f"[receiver] public_url {public_url} is not https: Altinn accepts only https endpoints with a publicly"
        " trusted certificate, so it will refuse the subscription"
    )


def check_wanted(config: Config) -> tuple[SubscriptionConfig, ...]:
    """The configured subscriptions, each URN checked again before anything is sent to Altinn."""
    for i, wanted in enumerate(config.subscriptions):
        check_resource_urn(f"subscriptions[{i}].resource", wanted.resource)
    return config.subscriptions


def key_of(subscription: Subscription) -> SubscriptionConfig:
    return SubscriptionConfig(
        resource=subscription.resource_filter or "",
        subject=subscription.subject_filter or "",
        type=subscription.type_filter or "",
    )


def is_plain(subscription: Subscription) -> bool:
    """Created the way this receiver creates them: no source filter, no sub-units (else it is not ours to match)."""
    raw = {k.lower(): v for k, v in subscription.raw.items()}
    return not raw.get("sourcefilter") and not raw.get("includesubunits")


# --- what exists compared with what is wanted ---

ROLES = ("current", "superseded", "unwanted", "missing", "other-endpoint")


@dataclass(frozen=True)
class SubscriptionView:
    """One line of `subscriptions list`: a wanted subscription and/or one that exists at Altinn.

    role: `current` (wanted, current code), `superseded` (wanted filters, old code; deleted at `delete_after`),
    `unwanted` (our endpoint, filters the config no longer has: `prune` deletes it), `missing` (wanted, not at
    Altinn), `other-endpoint` (someone else's endpoint under the same Altinn consumer: never touched).
    """

    id: int | None
    key: SubscriptionConfig
    role: str
    wanted: bool
    validated: bool | None
    endpoint: str
    code: str
    validated_at: str = ""
    delete_after: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.key.resource,
            "subject": self.key.subject,
            "type": self.key.type,
            "role": self.role,
            "wanted": self.wanted,
            "validated": self.validated,
            "endpoint": self.endpoint,
            "code": self.code,
            "validated_at": self.validated_at,
            "delete_after": self.delete_after,
        }


def compare(
    wanted: Iterable[SubscriptionConfig],
    existing: Iterable[Subscription],
    receiver: ReceiverConfig,
    validated_at: dict[int, str],
    cache_lifetime: float = CACHE_LIFETIME,
) -> list[SubscriptionView]:
    """Wanted vs existing. `validated_at` maps Altinn ids to when this receiver first saw them validated."""
    wanted = tuple(dict.fromkeys(wanted))
    base = without_query(receiver.public_url) if receiver.public_url else ""
    views: list[SubscriptionView] = []
    current: dict[SubscriptionConfig, SubscriptionView] = {}
    for sub in sorted(existing, key=lambda s: s.id):
        key = key_of(sub)
        ours = bool(base) and without_query(sub.endpoint) == base
        standing = code_standing(sub.endpoint, receiver) if ours else ""
        if not ours:
            role = "other-endpoint"
        elif key not in wanted or not is_plain(sub):
            role = "unwanted"
        elif standing == "current" and key not in current:
            role = "current"
        else:
            role = "superseded"
        view = SubscriptionView(
            id=sub.id,
            key=key,
            role=role,
            wanted=key in wanted,
            validated=sub.validated,
            endpoint=shown(sub.endpoint),
            code=standing,
            validated_at=validated_at.get(sub.id, "") if sub.validated else "",
        )
        if role == "current":
            current[key] = view
        views.append(view)
    for key in wanted:
        if key not in current:
            views.append(SubscriptionView(None, key, "missing", True, None, shown(endpoint_url(receiver)), "current"))
    return [_with_deadline(v, current.get(v.key), cache_lifetime) for v in views]


def _with_deadline(view: SubscriptionView, successor: SubscriptionView | None, lifetime: float) -> SubscriptionView:
    """A superseded subscription may go `lifetime` after its successor was first seen validated."""
    if view.role != "superseded" or successor is None or not successor.validated_at:
        return view
    moment = parse_iso(successor.validated_at) + timedelta(seconds=lifetime)
    return SubscriptionView(**{**view.__dict__, "delete_after": to_iso(moment)})


def due_for_deletion(views: Iterable[SubscriptionView], at: str | None = None) -> list[SubscriptionView]:
    moment = at or to_iso(now())
    return [v for v in views if v.role == "superseded" and v.delete_after and v.delete_after <= moment]


# --- talking to Altinn and the store ---


class SubscriptionManager:
    """One pass of each job against Altinn: register, refresh, compare, retire, prune. The service and the
    `subscriptions` commands both use it."""

    def __init__(
        self,
        config: Config,
        conn: Database,
        clients: AltinnClients,
        *,
        cache_lifetime: float = CACHE_LIFETIME,
    ) -> None:
        self.config = config
        self.conn = conn
        self.events = clients.events
        self.cache_lifetime = cache_lifetime

    @property
    def receiver(self) -> ReceiverConfig:
        return self.config.receiver

    def wanted(self) -> tuple[SubscriptionConfig, ...]:
        return check_wanted(self.config)

    @tracing.traced("subscription register")
    async def register(self, key: SubscriptionConfig) -> state.SubscriptionRecord:
        """POST the subscription (an identical body every time: Altinn answers with the same id)."""
        if not self.receiver.public_url:
            raise PermanentError("[receiver] public_url is not set: Altinn needs the URL it should push to")
        check_resource_urn("subscriptions.resource", key.resource)
        sub = await self.events.create_subscription(
            endpoint_url(self.receiver), key.resource, subject=key.subject or None, type=key.type or None
        )
        record = await self._remember(sub, key)
        log.info(
            "subscription registered",
            extra={
                **_labels(key),
                "subscription_id": sub.id,
                "validated": sub.validated,
                "endpoint": shown(sub.endpoint),
            },
        )
        return record

    @tracing.traced("subscription refresh")
    async def refresh(self, record: state.SubscriptionRecord) -> state.SubscriptionRecord | None:
        """Ask Altinn about one subscription; None (and forgotten) when it no longer exists there."""
        try:
            sub = await self.events.get_subscription(record.altinn_id)
        except PermanentError as exc:
            if exc.status != 404:
                raise
            await state.forget_subscription(self.conn, record.altinn_id)
            return None
        return await self._remember(sub, record.key)

    async def _remember(self, sub: Subscription, key: SubscriptionConfig) -> state.SubscriptionRecord:
        standing = code_standing(sub.endpoint, self.receiver)
        return await state.save_subscription(
            self.conn,
            sub.id,
            key,
            without_query(sub.endpoint),
            fingerprint(code_of(sub.endpoint)),
            validated=sub.validated,
            superseded=standing != "current",
        )

    @tracing.traced("subscriptions survey")
    async def survey(self) -> list[SubscriptionView]:
        """List Altinn's subscriptions, compare with the config, and bring the store's records up to date."""
        existing = await self.events.list_subscriptions()
        known = {r.altinn_id: r for r in await state.list_subscriptions(self.conn)}
        validated_at: dict[int, str] = {}
        for view in compare(self.wanted(), existing, self.receiver, {}, self.cache_lifetime):
            if view.role in ("current", "superseded") and view.id is not None:
                sub = next(s for s in existing if s.id == view.id)
                validated_at[view.id] = (await self._remember(sub, view.key)).validated_at
        for altinn_id in set(known) - {s.id for s in existing}:
            await state.forget_subscription(self.conn, altinn_id)
        return compare(self.wanted(), existing, self.receiver, validated_at, self.cache_lifetime)

    @tracing.traced("subscription delete")
    async def delete(self, altinn_id: int) -> None:
        await self.events.delete_subscription(altinn_id)
        await state.forget_subscription(self.conn, altinn_id)
        log.info("subscription deleted", extra={"subscription_id": altinn_id})

    async def retire_due(self, views: Iterable[SubscriptionView]) -> list[int]:
        """Delete superseded subscriptions whose successor has been validated for `cache_lifetime`."""
        deleted = []
        for view in due_for_deletion(views):
            assert view.id is not None
            await self.delete(view.id)
            log.info(
                "superseded subscription retired",
                extra={**_labels(view.key), "subscription_id": view.id, "endpoint": view.endpoint},
            )
            deleted.append(view.id)
        return deleted


def _labels(key: SubscriptionConfig) -> dict[str, str]:
    return {"resource": key.resource, "subject": key.subject, "type": key.type}


# --- the background service ---


class SubscriptionService:
    """Reconciles the configured subscriptions at startup and keeps at it (see the module docstring).

    Each round: compare with Altinn; POST the wanted subscriptions (all of them in the first round, afterwards those
    missing or unvalidated); poll the unvalidated ones with backoff; retire superseded ones that are due. A round
    starts every `[catchup] interval`, or sooner when a superseded subscription falls due.

    `reconciled` is set once the first round has POSTed (or failed to): catch-up waits for it, which gives the
    startup order store → pushes → subscriptions → catch-up.
    """

    name = "subscriptions"

    def __init__(
        self,
        *,
        cache_lifetime: float = CACHE_LIFETIME,
        poll_initial: float = 1.0,
        poll_cap: float = 60.0,
        lease: SyncLease | None = None,
    ) -> None:
        """`lease`: reconcile only while this process holds it (shared with `CatchupService`); None: always."""
        self.cache_lifetime = cache_lifetime
        self._lease = lease
        self.poll_initial = poll_initial
        self.poll_cap = poll_cap
        self.reconciled = asyncio.Event()
        self._clients: AltinnClients | None = None
        self._interval = 300.0
        self._task: asyncio.Task[None] | None = None
        self._views: list[SubscriptionView] = []
        self._state = "starting"
        self._error = ""
        self._warning = ""
        self._gauge: Gauge | None = None

    async def start(self, runtime: Runtime) -> None:
        """Begin the first round; returns once it has POSTed every wanted subscription (or failed to)."""
        self._clients = runtime.require_altinn() if runtime.config.subscriptions else None
        self._interval = runtime.config.catchup.interval
        self._gauge = Gauge(
            "altinn_receiver_subscription_validated",
            "1 when the configured subscription is validated at Altinn, 0 while it is not",
            ["resource", "subject", "type"],
            registry=runtime.metrics.registry,
        )
        lease = self._lease if self._clients is not None else None  # with nothing to reconcile, nothing to hold
        work = held(lease, lambda: self._run(runtime.config, runtime.store))
        self._task = asyncio.create_task(work, name="subscriptions")
        await first_turn(lease, self.reconciled)

    async def stop(self, deadline: float) -> None:
        await stop_task(self._task, deadline)

    def status(self) -> dict[str, Any]:
        standby = self._clients is not None and self._lease is not None and self._lease.standby()
        body: dict[str, Any] = {
            "state": "standby" if standby else self._state,
            "subscriptions": [v.to_json() for v in self._views if v.role in ("current", "missing", "superseded")],
        }
        if self._error:
            body["error"] = self._error
        if self._warning:
            body["warning"] = self._warning
        return body

    async def _run(self, config: Config, conn: Database) -> None:
        self._warning = (public_url_warning(config.receiver.public_url) if config.receiver.public_url else "") or ""
        if self._warning:
            log.warning(self._warning)
        if self._clients is None:
            self._state = "none configured"
            self.reconciled.set()
            return
        manager = SubscriptionManager(config, conn, self._clients, cache_lifetime=self.cache_lifetime)
        first, failures = True, 0
        try:
            while True:
                try:
                    await self._round(manager, everything=first)
                    first, failures, self._error = False, 0, ""
                    wait = self._next_round()
                except (AltinnError, StoreError) as exc:
                    failures += 1
                    self._error = redact(str(exc))
                    log.warning("reconciling subscriptions failed; trying again", extra={"error": self._error})
                    wait = min(self.poll_initial * 2**failures, self._interval)
                finally:
                    self.reconciled.set()
                await asyncio.sleep(wait)
        finally:
            if self._gauge is not None:  # the holder of the sync lease reports it; a process that lost it, nothing
                self._gauge.clear()

    async def _round(self, manager: SubscriptionManager, *, everything: bool) -> None:
        views = await manager.survey()
        wanted = {v.key: v for v in views if v.role in ("current", "missing")}
        pending: dict[SubscriptionConfig, state.SubscriptionRecord] = {}
        registered = False
        for key in manager.wanted():
            view = wanted.get(key)
            if not everything and view is not None and view.validated:
                continue
            if not everything and view is not None and view.id is not None:
                log.warning(
                    "subscription still not validated: posting it again to trigger a new validation push"
                    " (check that [receiver] public_url reaches this receiver over https)",
                    extra={**_labels(key), "subscription_id": view.id},
                )
            record = await manager.register(key)
            registered = True
            if record.state != "validated":
                pending[key] = record
        self.reconciled.set()
        if registered:
            views = await manager.survey()
            self._show(views)
        if pending:
            await self._wait_for_validation(manager, pending, time.monotonic() + self._interval)
            views = await manager.survey()
        if await manager.retire_due(views):
            views = await manager.survey()
        self._show(views)
        self._log_round()

    async def _wait_for_validation(
        self,
        manager: SubscriptionManager,
        pending: dict[SubscriptionConfig, state.SubscriptionRecord],
        deadline: float,
    ) -> None:
        """Poll the unvalidated subscriptions with backoff until all are validated or the deadline passes."""
        delay = self.poll_initial
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, self.poll_cap)
            changed = False
            for key, record in list(pending.items()):
                refreshed = await manager.refresh(record)
                if refreshed is None or refreshed.state == "validated":
                    del pending[key]
                    changed = True
                if refreshed is not None and refreshed.state == "validated":
                    log.info("subscription validated", extra={**_labels(key), "subscription_id": record.altinn_id})
            if changed:
                self._show(await manager.survey())

    def _next_round(self) -> float:
        """Seconds until the next round: the interval, or sooner when a superseded subscription falls due."""
        wait = self._interval
        for view in self._views:
            if view.role == "superseded" and view.delete_after:
                wait = min(wait, max((parse_iso(view.delete_after) - now()).total_seconds(), 0.0))
        return wait

    def _show(self, views: list[SubscriptionView]) -> None:
        """Status and metrics from the latest comparison with Altinn."""
        self._views = views
        wanted = [v for v in views if v.role in ("current", "missing")]
        self._state = "validated" if all(v.validated for v in wanted) else "unvalidated"
        if self._gauge is not None:
            for view in wanted:
                self._gauge.labels(**_labels(view.key)).set(1 if view.validated else 0)

    def _log_round(self) -> None:
        for view in self._views:
            if view.role == "superseded":
                when = f"at {view.delete_after}" if view.delete_after else "once its successor has been validated"
                log.info(
                    "subscription carries an old code; it will be deleted " + when,
                    extra={**_labels(view.key), "subscription_id": view.id, "endpoint": view.endpoint},
                )
        unvalidated = [v.id for v in self._views if v.role in ("current", "missing") and not v.validated]
        if unvalidated:
            log.warning(
                "subscriptions not validated: Altinn pushes nothing to them until they are; posting them again"
                f" every {format_duration(self._interval)}",
                extra={"subscription_ids": unvalidated},
            )
