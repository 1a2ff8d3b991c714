"""The one error family every Altinn call raises: transient (retry later) or permanent (retrying will not help).

Messages pass through `receiver.observability.logs.redact`, so a token or webhook code can never ride along into a
log line.
"""

from __future__ import annotations

from receiver.observability.logs import redact


class AltinnError(Exception):
    """A failed call to Maskinporten, the token exchange, or an Altinn platform API."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.message = redact(message)
        self.status = status
        super().__init__(self.message)


class TransientError(AltinnError):
    """5xx, 429, a timeout or a connection error: the same call may work later (after `retry_after` seconds)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentError(AltinnError):
    """Any other 4xx (or a response we cannot use): `title` and `error_code` come from Altinn's ProblemDetails."""

    def __init__(
        self, message: str, status: int | None = None, title: str | None = None, error_code: int | str | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.title = redact(title) if title else title
        self.error_code = error_code
