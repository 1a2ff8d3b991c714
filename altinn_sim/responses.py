"""Error bodies as Altinn's ASP.NET services write them: ProblemDetails (with `errorCode`), validation problems,
and the plain JSON strings the Events API returns for its own checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
    422: "https://tools.ietf.org/html/rfc9110#section-15.5.21",
}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}


class ApiError(Exception):
    """Raised by handlers to answer with `response`; the app's exception handler sends it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def trace_id() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"


def problem(status: int, detail: str, *, error_code: int | None = None, title: str | None = None) -> Response:
    body: dict[str, Any] = {
        "type": _TYPES.get(status, _TYPES[400]),
        "title": title or _TITLES.get(status, detail),
        "status": status,
        "detail": detail,
    }
    if error_code is not None:
        body["errorCode"] = error_code
    body["traceId"] = trace_id()
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def validation_problem(errors: dict[str, list[str]]) -> Response:
    body = {
        "type": _TYPES[400],
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": errors,
        "traceId": trace_id(),
    }
    return JSONResponse(body, status_code=400, media_type="application/problem+json")


def client_error(status: int) -> Response:
    """What an [ApiController] answers for a bare `Unauthorized()`, `NotFound()`, ...: ASP.NET maps it to a
    ProblemDetails with only type, title, status and traceId (ApiBehaviorOptions.ClientErrorMapping)."""
    body = {"type": _TYPES[status], "title": _TITLES[status], "status": status, "traceId": trace_id()}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def json_string(status: int, message: str) -> Response:
    """The Events API's explicit checks answer with a bare JSON string."""
    return JSONResponse(message, status_code=status)


class EscapedJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped, as System.Text.Json writes it by default: an event stored with
    text UTF-8 cannot encode (a lone surrogate, from `POST /_sim/events?check=false`) is served as its escape."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def empty(status: int) -> Response:
    return Response(status_code=status)


async def read_json(request: Request, invalid: Callable[[dict[str, list[str]]], Response] = validation_problem) -> Any:
    """The request body as JSON, or a 400 `invalid(errors)` as model binding would give."""
    body = await request.body()
    if not body.strip():
        raise ApiError(invalid({"": ["A non-empty request body is required."]}))
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(invalid({"$": [f"The JSON value could not be converted: {exc}"]})) from None


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response
