"""An example altinn-receiver handler: one JSON line per event in an audit file, with the correspondence's
title and status when `fetch_correspondence` ran before it.

Installed, it is the handler `audit_file` (entry point group `altinn_receiver.handlers`):

    [[pipelines]]
    types = ["no.altinn.correspondence.correspondence*"]
    handlers = ["fetch_correspondence", "store", "audit_file"]

    [handlers.audit_file]
    path = "audit.jsonl"

It shows the whole contract (docs/handlers.md): `BaseHandler`, `Options` checked at startup, `start` opening what
the handler keeps open, `handle` reading the typed `ctx.correspondence`, `aclose` closing it; its tests use
`handlers.testing`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from handlers import BaseHandler, Context, Event, OptionError


class AuditFile(BaseHandler):
    name = "audit_file"

    @dataclass(frozen=True)
    class Options:
        path: Path
        """Relative paths are relative to the receiver's config file."""
        include_title: bool = True

        def __post_init__(self) -> None:
            if self.path.is_dir():
                raise OptionError("path", f"{self.path} is a folder: name a file")

    def __init__(self) -> None:
        self._file: IO[str] | None = None

    async def start(self, ctx: Context[AuditFile.Options]) -> None:
        ctx.options.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = ctx.options.path.open("a", encoding="utf-8")

    async def handle(self, event: Event, ctx: Context[AuditFile.Options]) -> None:
        assert self._file is not None, "start() opens the file"
        line: dict[str, Any] = {"event_id": event.id, "type": event.type, "resourceinstance": event.resourceinstance}
        correspondence = ctx.correspondence
        if correspondence is not None:
            line["status"] = correspondence.status
            if ctx.options.include_title:
                line["title"] = correspondence.message_title
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()
        ctx.log.info("audit line written", extra={"path": str(ctx.options.path)})

    async def aclose(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
