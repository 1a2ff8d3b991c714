"""The console's pages from its Jinja2 templates (`templates/`, shipped in the package), with what every page shows:
the navigation, whether and how the operator is signed in, the CSRF token for its forms, and whether the console is
read-only (then no page offers a change)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from receiver.console.state import console_state
from receiver.durations import format_duration
from receiver.observability.logs import redact

NAV = (
    ("/", "Overview"),
    ("/events", "Events"),
    ("/dead", "Dead letters"),
    ("/correspondences", "Correspondences"),
    ("/subscriptions", "Subscriptions"),
)

environment = Environment(
    loader=PackageLoader("receiver.console", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def duration(seconds: float) -> str:
    """How long something took: milliseconds below a second, tenths below a minute, then "5m", "1h30m"."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 60 else format_duration(seconds)


environment.filters["duration"] = duration
environment.filters["when"] = lambda stamp: stamp[:19].replace("T", " ") + "Z" if stamp else ""
"""A stored timestamp to the second, for reading (the whole one is the element's `datetime` and `title`)."""
environment.filters["path_part"] = lambda text: quote(str(text), safe="")
"""A value as one segment of a path (an event id may hold a "/")."""
environment.filters["redact"] = redact  # an error's text may quote a configured secret, as a log line could


def fragment(template_name: str, **context: Any) -> str:
    """A template rendered on its own, without the page's common context (a row sent on a live stream)."""
    return environment.get_template(template_name).render(**context)


def render(request: Request, template_name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """`template_name` as a whole page for this request."""
    who = getattr(request.state, "signed_in", None)
    common = {
        "request": request,
        "nav": NAV,
        "path": request.url.path,
        "signed_in": who is not None,
        "by_session": who is not None and bool(who.session_id),
        "csrf_token": who.csrf if who is not None else "",
        "read_only": console_state(request).console.read_only,
    }
    page = environment.get_template(template_name).render(**common, **context)
    return HTMLResponse(page, status_code=status_code)
