"""The simulator's settings: sim.toml read into a frozen dataclass; every problem is a ConfigError naming the key."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altinn_sim.delivery import DEFAULT_PUSH_SCHEDULE, PUSH_SCHEDULES, PushSchedule
from altinn_sim.faults import FaultRule
from receiver.config import ConfigError, Section


@dataclass(frozen=True)
class SimSettings:
    """Every delay the simulator waits on Altinn's behalf (push and validation retries, the pull lag) is
    divided by `time_scale`, so tests and the demo run Altinn's hours in seconds.

    `push_schedule` picks one of Altinn Events' two push paths ("functions", its default config, or
    "wolverine"); `push_timeout` (never scaled) defaults to that path's own timeout when None."""

    time_scale: float = 1.0
    require_https: bool = False
    maskinporten_token_lifetime: float = 120.0
    altinn_token_lifetime: float = 1800.0
    seed_correspondences: int = 5
    pull_lag: float = 30.0
    push_schedule: str = DEFAULT_PUSH_SCHEDULE
    push_timeout: float | None = None
    faults: tuple[FaultRule, ...] = ()

    def __post_init__(self) -> None:
        if self.push_schedule not in PUSH_SCHEDULES:
            raise ValueError(f"push_schedule must be one of {', '.join(PUSH_SCHEDULES)}, got {self.push_schedule!r}")

    @property
    def schedule(self) -> PushSchedule:
        return PUSH_SCHEDULES[self.push_schedule]

    @property
    def effective_push_timeout(self) -> float:
        """`push_timeout`, or the push schedule's own timeout when it is not set."""
        return self.schedule.timeout if self.push_timeout is None else self.push_timeout


def load_sim_settings(path: str | os.PathLike[str] | None) -> SimSettings:
    """Read sim.toml; no path means the defaults."""
    if path is None:
        return SimSettings()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(file), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), f"not valid TOML: {exc}") from None
    return parse_sim_settings(data)


def parse_sim_settings(data: dict[str, Any]) -> SimSettings:
    sec = Section(data, "")
    defaults = SimSettings()
    settings = SimSettings(
        time_scale=_positive_number(sec, "time_scale", defaults.time_scale),
        require_https=sec.boolean("require_https", defaults.require_https),
        maskinporten_token_lifetime=sec.duration("maskinporten_token_lifetime", defaults.maskinporten_token_lifetime),
        altinn_token_lifetime=sec.duration("altinn_token_lifetime", defaults.altinn_token_lifetime),
        seed_correspondences=sec.integer("seed_correspondences", defaults.seed_correspondences, minimum=0),
        pull_lag=sec.duration("pull_lag", defaults.pull_lag, positive=False),
        push_schedule=sec.choice("push_schedule", tuple(PUSH_SCHEDULES), defaults.push_schedule),
        push_timeout=sec.duration("push_timeout", 0) if "push_timeout" in sec.data else None,
        faults=tuple(_fault(i, raw) for i, raw in enumerate(sec.tables("faults"))),
    )
    sec.done()
    return settings


def _positive_number(sec: Section, item: str, default: float) -> float:
    value = sec.data.pop(item, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(sec.name(item), f"must be a number above zero, got {value!r}")
    return float(value)


def _fault(index: int, raw: dict[str, Any]) -> FaultRule:
    try:
        return FaultRule.from_mapping(raw)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(f"faults[{index}].{key}", problem) from None
