"""`/correspondences` and `/correspondences/{id}`: the correspondences in the store as the configured `[altinn] role`
sees them.

A service owner sees what it sent: recipient, status, Altinn's status history and the events about it, but no title
or attachments once published (Altinn returns no content to the sender, docs/store.md). A recipient sees what it
received: sender, title, status and the attachments, each downloadable here from the files `download_attachments`
wrote, and only from inside the folders it writes to.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from handlers.download_attachments import DownloadAttachments, safe_file_name
from receiver.config import Config
from receiver.console.formats import human_size
from receiver.console.render import render
from receiver.console.state import console_runtime, console_state
from receiver.store.correspondences import get_attachment, get_correspondence, list_correspondences
from receiver.worker.pipelines import load_pipelines

PAGE_SIZE = 50
SERVICE_OWNER = "service-owner"


def attachment_folders(config: Config) -> tuple[Path, ...]:
    """Where this config's `download_attachments` steps write (each step's `dir`), resolved: the only folders an
    attachment is served from."""
    steps = load_pipelines(config).steps.values()
    folders = {Path(step.options.dir).resolve() for step in steps if isinstance(step.handler, DownloadAttachments)}
    return tuple(sorted(folders))


def confined(stored: str, folders: tuple[Path, ...]) -> Path | None:
    """The file a `correspondence_attachments.path` names, when it is a regular file inside one of `folders` once
    every link and `..` is resolved; None otherwise (no path, no file, or anywhere else)."""
    if not stored or "\x00" in stored:
        return None
    try:
        resolved = Path(stored).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_file():
        return None
    return resolved if any(resolved.is_relative_to(folder) for folder in folders) else None


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    return int(text) if text.isdigit() and 0 < int(text) < 1_000_000 else 1


async def correspondence_list(request: Request) -> Response:
    runtime = console_runtime(request)
    status = request.query_params.get("status", "").strip()
    q = request.query_params.get("q", "").strip()
    page = _page_number(request)
    found = await list_correspondences(runtime.store, status=status, q=q, limit=PAGE_SIZE + 1,
                                       offset=(page - 1) * PAGE_SIZE)  # fmt: skip
    return render(
        request,
        "correspondences.html",
        role=runtime.config.altinn.role,
        service_owner=runtime.config.altinn.role == SERVICE_OWNER,
        correspondences=found[:PAGE_SIZE],
        status=status,
        q=q,
        page=page,
        more=len(found) > PAGE_SIZE,
    )


async def correspondence_page(request: Request) -> Response:
    runtime = console_runtime(request)
    correspondence_id = request.path_params["correspondence_id"]
    found = await get_correspondence(runtime.store, correspondence_id)
    if found is None:
        raise HTTPException(404, f"no correspondence {correspondence_id} in the store")
    folders = console_state(request).attachment_folders
    downloadable = {a["attachment_id"] for a in found.attachments if confined(a["path"], folders) is not None}
    return render(
        request,
        "correspondence.html",
        role=runtime.config.altinn.role,
        service_owner=runtime.config.altinn.role == SERVICE_OWNER,
        c=found,
        downloadable=downloadable,
        size=human_size,
    )


async def attachment_download(request: Request) -> Response:
    """The file of one stored attachment, as a download (never shown inline: it is the sender's content)."""
    runtime = console_runtime(request)
    correspondence_id = request.path_params["correspondence_id"]
    attachment_id = request.path_params["attachment_id"]
    row = await get_attachment(runtime.store, correspondence_id, attachment_id)
    if row is None:
        raise HTTPException(404, f"correspondence {correspondence_id} has no attachment {attachment_id}")
    path = confined(row["path"], console_state(request).attachment_folders)
    if path is None:
        raise HTTPException(404, f"attachment {attachment_id} has no file in the attachments folder")
    name = safe_file_name(row["file_name"], attachment_id)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=name,
        content_disposition_type="attachment",
    )  # the console's headers add nosniff and no-store (receiver/console/app.py)


routes: list[BaseRoute] = [
    Route("/correspondences", correspondence_list, methods=["GET"]),
    Route("/correspondences/{correspondence_id}", correspondence_page, methods=["GET"]),
    Route("/correspondences/{correspondence_id}/attachments/{attachment_id}", attachment_download, methods=["GET"]),
]
