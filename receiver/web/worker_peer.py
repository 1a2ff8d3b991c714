"""The worker process of `serve` as its webhook process sees it: the worker's `/readyz` and `/metrics` on a loopback
port, asked for when the service's own are (docs/operations.md#roles). The service port answers for the service, so
its `/readyz` is ready only when the worker is too, and its `/metrics` has the worker's metrics in it."""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)

TIMEOUT = 5.0
"""Seconds to wait for the worker's answer: more than its /readyz takes for a probe write (3 s)."""


class WorkerPeer:
    """The worker process's `/readyz` and `/metrics` at `url` (made on the event loop that uses it)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.AsyncClient(base_url=url, timeout=TIMEOUT)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the worker is ready, and its `/readyz` body (or one saying why it could not be had)."""
        try:
            response = await self._client.get("/readyz")
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return False, {"ready": False, "error": f"the worker process did not answer: {type(exc).__name__}"}
        return response.status_code == 200, body

    async def metrics(self) -> str | None:
        """The worker's exposition, or None (logged) when it cannot be had."""
        try:
            response = await self._client.get("/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("cannot read the worker process's metrics", extra={"error": type(exc).__name__})
            return None
        return response.text

    async def aclose(self) -> None:
        await self._client.aclose()
