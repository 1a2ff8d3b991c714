"""How a pipeline run ended, and what that makes of the event: `done`, `skipped`, `retrying` (when) or `dead`.

Pure functions of the run, the event's attempts and age, and `[dispatch]`; the dispatcher records what they decide.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from handlers.api import HandlerError, Permanent, RetryLater
from receiver.altinn import AltinnError, PermanentError, TransientError
from receiver.config import DispatchConfig
from receiver.durations import format_duration
from receiver.observability.logs import redact
from receiver.timeutil import age_seconds, iso_after

OUTCOMES = ("done", "retrying", "dead", "skipped")
STEP_OUTCOMES = ("ok", "retry", "pause", "timeout", "permanent", "cancelled")
"""How one handler step ended: the `outcome` label of `altinn_receiver_step_total`."""
REASON_LIMIT = 300


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str = ""
    after: float | None = None
    """For `retrying`: wait at least this long (a handler's RetryLater(after=...) or Altinn's Retry-After)."""
    counts: bool = True
    """For `retrying`: False for a handler's pause (RetryLater(attempt=False)), which uses up no attempt."""
    step: str = ""
    """The handler the run ended at: the one that failed, or the last one; "" when none ran."""
    http_status: int | None = None
    """The HTTP status of the failed call (Altinn's, or a forward target's) when the failure had one."""


@dataclass(frozen=True)
class Decision:
    """How a run ends in the inbox: `status`, `last_error`, and for `retrying` when (`next_attempt_at`) and whether
    the run counts as an attempt."""

    status: str
    reason: str
    next_attempt_at: str = ""
    counts: bool = True


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before retry number `attempt`: exponential (base, 2·base, 4·base, ... up to cap), full jitter
    between `base` and that ceiling, so retries of many events spread out instead of arriving together."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    return rng.uniform(min(base, ceiling), ceiling)


def short(reason: str) -> str:
    """A reason fit for `last_error` and a log line: secrets redacted, one line, bounded."""
    text = " ".join(redact(reason).split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def failure(step: str, exc: Exception) -> Outcome:
    """What a handler's exception means: Permanent and Altinn's PermanentError are final, anything else transient."""
    status = http_status(exc)
    if isinstance(exc, RetryLater):
        return Outcome(
            "retrying", f"{step}: {exc.reason}", exc.after, counts=exc.attempt, step=step, http_status=status
        )
    if isinstance(exc, TransientError):
        return Outcome("retrying", f"{step}: {exc.message}", exc.retry_after, step=step, http_status=status)
    if isinstance(exc, Permanent):
        return Outcome("dead", f"{step}: {exc.reason}", step=step, http_status=status)
    if isinstance(exc, PermanentError):
        return Outcome("dead", f"{step}: {exc.message}", step=step, http_status=status)
    return Outcome("retrying", f"{step}: {type(exc).__name__}: {exc}", step=step, http_status=status)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a failure carries: an Altinn error's, a handler's `http_status`, else that of the Altinn
    error it was raised from."""
    if isinstance(exc, AltinnError):
        return exc.status
    if isinstance(exc, HandlerError) and exc.http_status is not None:
        return exc.http_status
    cause = exc.__cause__
    return cause.status if isinstance(cause, AltinnError) else None


def step_outcome(outcome: Outcome) -> str:
    """The step outcome (`STEP_OUTCOMES`) of a step that failed with `outcome` (a timeout is the caller's to tell)."""
    if outcome.status == "dead":
        return "permanent"
    return "retry" if outcome.counts else "pause"


def decide(outcome: Outcome, attempts: int, received_at: str, settings: DispatchConfig, rng: random.Random) -> Decision:
    """How an event ends its `attempts`-th run: a retry becomes dead once out of attempts (`max_attempts`; a pause,
    which does not count, never is) or time (`max_age` since `received_at`), and otherwise waits a backoff, never
    less than the outcome's own `after`."""
    reason = short(outcome.reason)
    if outcome.status != "retrying":
        return Decision(outcome.status, reason)
    if outcome.counts and attempts >= settings.max_attempts:
        return Decision("dead", short(f"gave up after {attempts} attempts; last: {reason}"))
    if age_seconds(received_at) >= settings.max_age:
        return Decision(
            "dead", short(f"gave up: older than max_age {format_duration(settings.max_age)}; last: {reason}")
        )
    delay = backoff(attempts, settings.backoff_base, settings.backoff_cap, rng)
    if outcome.after is not None:
        delay = max(delay, outcome.after)
    return Decision("retrying", reason, iso_after(delay), outcome.counts)
