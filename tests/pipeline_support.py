"""The `[dispatch]`, `[[pipelines]]` and `[handlers.NAME]` part of a test's config, written from Python values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

CORRESPONDENCE_EVENTS = "no.altinn.correspondence.*"

Pipeline = tuple[Sequence[str], Sequence[str]]
"""(types, handlers) of one `[[pipelines]]` table."""


def toml_value(value: Any) -> str:
    """A TOML value: strings, numbers, booleans and lists as in JSON; a mapping as an inline table."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(key)} = {toml_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)


def table(header: str, values: Mapping[str, Any]) -> list[str]:
    return [f"[{header}]", *(f"{key} = {toml_value(value)}" for key, value in values.items()), ""]


def pipelines_toml(
    *pipelines: Pipeline,
    dispatch: Mapping[str, Any] | None = None,
    handlers: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Config text to append to a receiver's: the dispatcher's settings (unless the config has them already), the
    pipelines in order (first match wins), and each handler's options (`use` makes a second instance of another
    handler)."""
    lines = ["", *(table("dispatch", dispatch) if dispatch is not None else [])]
    for types, names in pipelines:
        lines += table("[pipelines]", {"types": list(types), "handlers": list(names)})
    for name, options in (handlers or {}).items():
        lines += table(f"handlers.{json.dumps(name)}", options)
    return "\n".join(lines)
