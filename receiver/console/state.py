"""What every console request shares: the `[console]` settings, the receiver's runtime, the sessions, the folders
attachments are served from, and whether the console is closing (its live streams end then)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request

from receiver.config import Config, ConsoleConfig
from receiver.console.sessions import Sessions
from receiver.runtime import Runtime


@dataclass
class ConsoleState:
    config: Config
    console: ConsoleConfig
    runtime: Callable[[], Runtime | None]
    """The running receiver's runtime; None until the webhook's lifespan has opened the store."""
    sessions: Sessions
    attachment_folders: tuple[Path, ...]
    """Where the config's `download_attachments` steps write: the only folders an attachment is served from (read
    once, when the console is built, as the worker loads its pipelines)."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the console begins to shut down: live streams end."""


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def console_runtime(request: Request) -> Runtime:
    """The receiver's runtime, or 503 while the store is not open yet (or no longer)."""
    runtime = console_state(request).runtime()
    if runtime is None:
        raise HTTPException(503, "the receiver is starting or stopping: try again in a moment")
    return runtime
