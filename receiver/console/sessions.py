"""Signed-in browsers: sessions held in this process's memory, each with its own CSRF token; and the CSRF token of
the sign-in form, before there is a session.

In memory rather than in signed cookies: `/logout` ends a session for good (a signed cookie stays valid until it
expires, wherever a copy of it went), and nothing needs a signing key kept across restarts. The price: a restart
of the receiver signs everyone out (docs/console.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires: float
    """A `time.monotonic()` value."""


class Sessions:
    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._sessions: dict[str, Session] = {}
        # The CSRF token of requests signed in with the bearer header: they have no session to hold one, and a
        # page rendered for them carries this in its forms.
        self.bearer_csrf = secrets.token_urlsafe(32)
        self._login_key = secrets.token_bytes(32)

    def login_csrf(self, nonce: str) -> str:
        """The CSRF token of the sign-in form of the browser whose login cookie holds `nonce` (a random value it was
        given with the form): only this process can make it, so a form can carry it only if it came from here, and
        it is of no use without that browser's cookie. Nothing is kept per browser until it signs in."""
        return hmac.new(self._login_key, nonce.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    def start(self) -> Session:
        """A new session, valid for `lifetime` from now."""
        self._forget_expired()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.monotonic() + self.lifetime)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id; None when there is none or it has expired."""
        session = self._sessions.get(session_id)
        if session is None or not hmac.compare_digest(session.id, session_id):
            return None
        if time.monotonic() >= session.expires:
            del self._sessions[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for expired in [key for key, session in self._sessions.items() if now >= session.expires]:
            del self._sessions[expired]
