"""The simulator's settings: sim.toml read into a frozen dataclass by the receiver's validator; every problem is a
ConfigError naming the key."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altinn_sim.delivery import DEFAULT_PUSH_SCHEDULE, PUSH_SCHEDULES, PushSchedule
from altinn_sim.faults import FaultRule
from receiver.config import ConfigError
from receiver.validation import Duration, Invalid, Source, build, setting


def _push_schedule(name: str) -> str:
    if name not in PUSH_SCHEDULES:
        raise ValueError(f"must be one of {', '.join(PUSH_SCHEDULES)}, got {name!r}")
    return name


def _faults(tables: list[dict[str, Any]]) -> tuple[FaultRule, ...]:
    rules = []
    for index, raw in enumerate(tables):
        try:
            rules.append(FaultRule.from_mapping(raw))
        except ValueError as exc:  # FaultRule names the key ("error_rate: expected ..."): the admin API shares it
            key, _, problem = str(exc).partition(": ")
            raise Invalid(problem, f"[{index}].{key}") from None
    return tuple(rules)


@dataclass(frozen=True)
class SimSettings:
    """Every delay the simulator waits on Altinn's behalf (push and validation retries, the pull lag) is
    divided by `time_scale`, so tests and the demo run Altinn's hours in seconds.

    `push_schedule` picks one of Altinn Events' two push paths ("functions", its default config, or
    "wolverine"); `push_timeout` (never scaled) defaults to that path's own timeout when None."""

    time_scale: float = setting(1.0, positive=True)
    require_https: bool = False
    maskinporten_token_lifetime: Duration = setting(120.0, positive=True)
    altinn_token_lifetime: Duration = setting(1800.0, positive=True)
    seed_correspondences: int = setting(5, minimum=0)
    pull_lag: Duration = 30.0
    push_schedule: str = setting(DEFAULT_PUSH_SCHEDULE, check=_push_schedule)
    push_timeout: Duration | None = setting(None, positive=True)
    faults: tuple[FaultRule, ...] = setting((), raw=list[dict[str, Any]], check=_faults)

    def __post_init__(self) -> None:
        _push_schedule(self.push_schedule)

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
    return parse_sim_settings(data, Source(os.environ, file.parent))


def parse_sim_settings(data: dict[str, Any], source: Source | None = None) -> SimSettings:
    return build(SimSettings, data, "", source or Source(), where="sim.toml")
