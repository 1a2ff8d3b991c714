"""Altinn's waits, scaled: the simulator waits `seconds / time_scale` wherever Altinn would wait `seconds`."""

from __future__ import annotations

import asyncio
import time


class Clock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be above zero, got {time_scale}")
        self.time_scale = time_scale

    def scaled(self, seconds: float) -> float:
        """How long the simulator really waits for Altinn's `seconds`."""
        return seconds / self.time_scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.scaled(seconds))

    @staticmethod
    def now() -> float:
        """Monotonic seconds, for ages measured in real time (the pull lag, jti expiry)."""
        return time.monotonic()
