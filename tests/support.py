"""Helpers the tests share: waiting for a condition (never a bare sleep), config files, subprocess servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
# Payloads in the shapes Altinn sends, and Altinn's OpenAPI spec: data/README.md says where each comes from.
DATA = Path(__file__).parent / "data"


def wait_until(
    condition: Callable[[], T | Literal[False] | None],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll `condition` until it returns something truthy (and return that); fail with `message` after `timeout` (a
    callable message is asked then, to say what was still missing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {said or condition!r}")
        time.sleep(interval)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def complete_lines(path: Path) -> list[str]:
    """The lines a running process has written to `path` so far, up to its last newline: what follows it may be a
    line only half written yet."""
    text = path.read_text(encoding="utf-8")
    return text[: text.rfind("\n") + 1].splitlines()
