"""Fault injection: per-route latency, errors, 429 with Retry-After, 401 as if the token were refused (or, with
`error_code` 4001, as Altinn's "no access" under the resource's policy), and hanging requests.

Rules come from sim.toml `[[faults]]` or `PUT /_sim/faults`. The middleware applies the first rule whose
method and path glob match; the admin API (`/_sim/`) is never faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.durations import parse_duration

# 401 stands for Altinn refusing a token it accepted before (expired early, revoked), whatever the request carries.
ERROR_STATUSES = (401, 429, 500, 503)
# A hanging request is answered after this long at the latest, so a forgotten rule cannot pin a client forever.
MAX_HANG_SECONDS = 3600.0


@dataclass(frozen=True)
class FaultRule:
    """What to do to requests matching `method` and the `path` glob (fnmatch, e.g. "/events/api/v1/*")."""

    path: str = "*"
    method: str = "*"
    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    retry_after: float = 1.0
    error_code: int | None = None
    """Altinn's ProblemDetails `errorCode` in the error's body (e.g. 4001 with 401: no access under the policy)."""
    hang: bool = False
    count: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FaultRule:
        """Build a rule from TOML or JSON; raises ValueError("<key>: <problem>") on bad input."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for key in ("path", "method"):
            if key in raw:
                if not isinstance(raw[key], str) or not raw[key]:
                    raise ValueError(f"{key}: expected a non-empty string")
                values[key] = raw[key].upper() if key == "method" else raw[key]
        for key in ("latency", "retry_after"):
            if key in raw:
                try:
                    values[key] = parse_duration(raw[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        if "error_rate" in raw:
            rate = raw["error_rate"]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
                raise ValueError("error_rate: expected a number from 0 to 1")
            values["error_rate"] = float(rate)
        if "error_status" in raw:
            if raw["error_status"] not in ERROR_STATUSES:
                raise ValueError(f"error_status: expected one of {', '.join(map(str, ERROR_STATUSES))}")
            values["error_status"] = int(raw["error_status"])
        if raw.get("error_code") is not None:
            code = raw["error_code"]
            if isinstance(code, bool) or not isinstance(code, int) or code < 1:
                raise ValueError("error_code: expected a positive integer")
            values["error_code"] = code
        if "hang" in raw:
            if not isinstance(raw["hang"], bool):
                raise ValueError("hang: expected true or false")
            values["hang"] = raw["hang"]
        if raw.get("count") is not None:
            count = raw["count"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError("count: expected a positive integer")
            values["count"] = count
        return cls(**values)


class FaultSet:
    """The active rules, in order; rules with a `count` disappear once used up."""

    def __init__(self, rules: tuple[FaultRule, ...] = (), rng: random.Random | None = None) -> None:
        self._rules: list[FaultRule] = list(rules)
        self._rng = rng or random.Random()

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def replace(self, rules: list[FaultRule]) -> None:
        self._rules = list(rules)

    def add(self, rules: list[FaultRule]) -> None:
        self._rules.extend(rules)

    def clear(self) -> None:
        self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule that applies to this request, spending one of its `count` uses."""
        for index, rule in enumerate(self._rules):
            if rule.matches(method, path):
                if rule.count is not None:
                    if rule.count <= 1:
                        del self._rules[index]
                    else:
                        self._rules[index] = replace(rule, count=rule.count - 1)
                return rule
        return None

    def fires(self, rule: FaultRule) -> bool:
        return rule.error_rate > 0 and self._rng.random() < rule.error_rate


class FaultMiddleware:
    """ASGI middleware that applies the matching fault rule before the app sees the request."""

    def __init__(self, app: ASGIApp, faults: FaultSet, exempt_prefix: str = "/_sim") -> None:
        self.app = app
        self.faults = faults
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        rule = self.faults.take(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.hang:
            await _wait_for_disconnect(receive, MAX_HANG_SECONDS)
            return
        if rule.latency:
            await asyncio.sleep(rule.latency)
        if self.faults.fires(rule):
            await _send_error(send, rule)
            return
        await self.app(scope, receive, send)


async def _wait_for_disconnect(receive: Receive, limit: float) -> None:
    async def drain() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drain(), timeout=limit)


async def _send_error(send: Send, rule: FaultRule) -> None:
    problem: dict[str, Any] = {
        "title": "Injected fault",
        "status": rule.error_status,
        "detail": f"simulator fault rule {rule.path}",
    }
    if rule.error_code is not None:
        problem["errorCode"] = rule.error_code
    body = json.dumps(problem).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if rule.error_status == 429:
        headers.append((b"retry-after", str(max(1, round(rule.retry_after))).encode()))
    await send({"type": "http.response.start", "status": rule.error_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
