"""An example altinn-receiver handler: one JSON line per event in an audit file, with the correspondence's
title and status when `fetch_correspondence` ran before it.

Installed, it is the handler `audit_file` (entry point group `altinn_receiver.handlers`):

    [[pipelines]]
    types = ["no.altinn.correspondence.correspondence*"]
    handlers = ["fetch_correspondence", "store", "audit_file"]

    [handlers.audit_file]
    path = "audit.jsonl"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers import Context, Event, OptionError


class AuditFile:
    name = "audit_file"

    @dataclass(frozen=True)
    class Options:
        path: Path
        """Relative paths are relative to the receiver's config file."""
        include_title: bool = True

        def __post_init__(self) -> None:
            if self.path.is_dir():
                raise OptionError("path", f"{self.path} is a folder: name a file")

    async def handle(self, event: Event, ctx: Context) -> None:
        line: dict[str, Any] = {"event_id": event.id, "type": event.type, "resourceinstance": event.resourceinstance}
        correspondence = ctx.results.get("correspondence")
        if correspondence is not None:
            line["status"] = correspondence.status
            if ctx.options.include_title:
                line["title"] = correspondence.message_title
        with ctx.options.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        ctx.log.info("audit line written", extra={"path": str(ctx.options.path)})
