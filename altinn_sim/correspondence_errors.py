"""The Correspondence API's numbered errors (Altinn's `Application/Errors.cs`) and how it writes them.

Altinn answers a handler's error with `ProblemDetailsHelper.ToProblemResult`: an `AltinnProblemDetails` (package
Altinn.Authorization.ProblemDetails 5.4.0) whose `code` is `CORR-` and the number in five digits, with the integer
`errorCode` beside it; the RFC 9110 `type` and `title` of the HTTP status replace the package's own. A request the
model binder refuses gets `ToValidationProblemResult`: title "Bad Request", `code` "STD-00000", one
`validationErrors[]` entry per message (`code` "CORR.VLD-00000", `paths` the binder's key with `/` for `.`) and the
legacy `errors` dictionary beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from altinn_sim.responses import trace_id

# API/Helpers/ProblemDetailsHelper.cs, StatusCodeMappings.
_STATUS = {
    400: ("https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"),
    401: ("https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"),
    403: ("https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"),
    404: ("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"),
    409: ("https://tools.ietf.org/html/rfc9110#section-15.5.10", "Conflict"),
    422: ("https://tools.ietf.org/html/rfc9110#section-15.5.21", "Unprocessable Entity"),
}
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Error:
    """`record Error(int ErrorCode, string Message, HttpStatusCode StatusCode)`."""

    code: int
    message: str
    status: int

    @property
    def altinn_code(self) -> str:
        """The package's ErrorCode string: `CORR-01001`."""
        return f"CORR-{self.code:05d}"


# Application/Errors.cs, the entries the simulator can answer with.
CORRESPONDENCE_NOT_FOUND = Error(1001, "The requested correspondence was not found", 404)
UPLOADED_FILES_MISMATCH = Error(1005, "Mismatch between uploaded files and attachment metadata", 400)
DUPLICATE_RECIPIENTS = Error(1006, "Recipients must be unique", 400)
EXISTING_ATTACHMENT_NOT_FOUND = Error(1007, "Existing attachment not found", 400)
DUE_DATE_PRIOR_TODAY = Error(1008, "DueDateTime cannot be prior to today", 400)
CANT_PURGE_PUBLISHED = Error(1013, "Sender cannot delete correspondence that has been published", 400)
ALREADY_PURGED = Error(1014, "Correspondence has already been purged", 400)
DUE_DATE_REQUIRED = Error(1016, "DueDateTime is required when confirmation is needed", 400)
MISSING_CONTENT = Error(1019, "The Content field must be provided for the correspondence", 400)
TITLE_EMPTY = Error(1020, "Message title cannot be empty", 400)
BODY_EMPTY = Error(1021, "Message body cannot be empty", 400)
BODY_TOO_LONG = Error(1022, "Message body cannot exceed 30000 characters", 400)
INVALID_LANGUAGE = Error(
    1023, "Invalid language chosen. Supported languages is Norsk bokmål (nb), Nynorsk (nn) and English (en)", 400
)
READ_BEFORE_FETCHED = Error(1024, "Correspondence must be fetched before it can be read", 400)
CONFIRM_BEFORE_FETCHED = Error(1025, "Correspondence must be fetched before it can be confirmed", 400)
ARCHIVE_BEFORE_CONFIRMED = Error(
    1026, "Cannot archive or delete a correspondence which has not been confirmed when confirmation is required", 400
)
INVALID_DATE_RANGE = Error(1027, "From date cannot be after to date", 400)
DUPLICATE_IDEMPOTENT_KEY = Error(1034, "A correspondence with the same idempotent key already exists", 409)
INVALID_REPLY_OPTIONS = Error(
    1035, "Reply options must be well-formed URIs and HTTPS with a max length of 255 characters", 400
)
TITLE_TOO_LONG = Error(1037, "Message title cannot exceed 255 characters", 400)
TOO_MANY_ATTACHMENTS = Error(1038, "A correspondence cannot contain more than 100 attachments in total", 400)
ALREADY_READ = Error(1040, "Correspondence is already marked as read", 400)
ALREADY_CONFIRMED = Error(1041, "Correspondence has already been confirmed", 400)
SUMMARY_TOO_LONG = Error(1042, "Message summary, if not null, must be between 0 and 255 characters long", 400)
IDEMPOTENT_KEY_WITH_MANY_RECIPIENTS = Error(
    1047, "Idempotency key is not supported for requests with multiple recipients", 400
)
CONFIDENTIAL_WITHOUT_FLAG = Error(
    1060,
    "Confidential correspondences (resources with the access package post-til-virksomheten-med-taushetsbelagt-innhold) "
    "cannot be initialized without setting the 'IsConfidential' flag to true",
    400,
)
FLAG_WITHOUT_CONFIDENTIAL_RESOURCE = Error(
    1061,
    "Correspondences cannot be initialized with 'IsConfidential' flag set to true if the resource is not confidential",
    400,
)
ATTACHMENT_NOT_FOUND = Error(2001, "The requested attachment was not found", 404)
ATTACHMENT_EXPIRY_TOO_SOON = Error(2017, "Attachment expirationTime must be at least 1 days from now", 400)
ATTACHMENT_PURGED = Error(2019, "The attachment has been purged and cannot be downloaded", 400)
ATTACHMENT_EXPIRED = Error(2020, "The attachment has expired and cannot be downloaded", 400)
NO_ACCESS = Error(
    4001,
    "You must use an Altinn token, DialogToken or log in to IDPorten as someone with access to the resource and "
    "organization in Altinn Authorization",
    401,
)


class CorrespondenceError(Exception):
    """Raised by the Correspondence endpoints and transitions; the app answers with `problem(error)`."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


def problem(error: Error) -> Response:
    kind, title = _STATUS.get(error.status, _STATUS[400])
    body: dict[str, Any] = {
        "type": kind,
        "title": title,
        "status": error.status,
        "detail": error.message,
        "code": error.altinn_code,
        "traceId": trace_id(),
        "statusDescription": title,
        "errorCode": error.code,
    }
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON)


def validation_problem(errors: dict[str, list[str]]) -> Response:
    """What the model binder's refusals become (ProblemDetailsHelper.ToValidationProblemResult)."""
    kind, title = _STATUS[400]
    body = {
        "type": kind,
        "title": title,
        "status": 400,
        "code": "STD-00000",
        "traceId": trace_id(),
        "statusDescription": title,
        "validationErrors": [
            {"code": "CORR.VLD-00000", "title": message, "paths": [key.replace(".", "/")]}
            for key, messages in errors.items()
            for message in messages
        ],
        "errors": errors,
    }
    return JSONResponse(body, status_code=400, media_type=PROBLEM_JSON)


async def error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CorrespondenceError)
    return problem(exc.error)
