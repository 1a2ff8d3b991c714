"""The docs say what the code does: docs/configuration.md has a row for every config key with the default the code
has, and every `altinn-receiver …` command and `use = "…"` handler the docs show exists."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_type_hints

import click
import pytest

from receiver.cli.configuration import toml_value
from receiver.cli.main import COMMANDS, main
from receiver.config import Config
from receiver.validation import dump, rules_of
from receiver.worker.pipelines import BUILTINS
from tests.support import REPO

CONFIGURATION = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]


def sections() -> Iterator[tuple[str, type]]:
    """Each config section's name and dataclass: `[receiver]`, `[[pipelines]]`, …"""
    hints = get_type_hints(Config)
    for field in dataclasses.fields(Config):
        if not rules_of(field).key:
            continue
        hint = hints[field.name]
        items = get_args(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield f"[{field.name}]", hint
        # a section that is off when absent
        elif type(None) in items and isinstance(items[0], type) and dataclasses.is_dataclass(items[0]):
            yield f"[{field.name}]", items[0]
        elif items and isinstance(items[0], type) and dataclasses.is_dataclass(items[0]):
            yield f"[[{field.name}]]", items[0]


def table_after(heading: str) -> dict[str, str]:
    """{key: default cell} of the first table under the `## ` heading that names `heading`."""
    start = next(m.end() for m in re.finditer(r"^## .*$", CONFIGURATION, re.M) if f"`{heading}`" in m.group())
    rows: dict[str, str] = {}
    for line in CONFIGURATION[start:].splitlines():
        if line.startswith("## "):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 4:
            rows[cells[0].strip("`")] = cells[1]
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize(("heading", "section"), list(sections()))
def test_configuration_md_has_a_row_for_every_key_with_its_default(heading: str, section: type) -> None:
    rows = table_after(heading)
    keys = [field.name for field in dataclasses.fields(section) if rules_of(field).key]
    assert sorted(rows) == sorted(keys), f"{heading}: the table and the dataclass list different keys"
    required = _required_placeholders(section)
    shown = dump(section(**required))
    for key in keys:
        cell = rows[key]
        if key not in required and cell.startswith("`") and shown[key] is not None:
            written = cell.split("`")[1]
            assert written == toml_value(shown[key]), f"{heading} {key}: docs say {written}, code says {shown[key]}"


def _required_placeholders(section: type) -> dict[str, Any]:
    """Values for the fields without a default, so that the defaults of the others can be read."""
    return {
        field.name: ()
        for field in dataclasses.fields(section)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    }


def shown_commands() -> Iterator[tuple[Path, str]]:
    """Each `altinn-receiver …` command line the docs show: in a code span, or a line of a code block."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"`altinn-receiver ([^`]+)`", text):
            yield path, match.group(1)
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            for line in block.splitlines():
                found = re.match(r"\s*(?:\$\s+)?altinn-receiver\s+(.+)", line)
                if found:
                    yield path, found.group(1)


def test_every_command_the_docs_show_exists() -> None:
    wrong = []
    ctx = click.Context(main)
    for path, line in shown_commands():
        words = [word for word in line.split() if not word.startswith("-")]
        if not words or not words[0].islower() or not words[0].isalpha():
            continue
        command = main.get_command(ctx, words[0]) if words[0] in COMMANDS else None
        subcommands = words[1].split("|") if len(words) > 1 else []  # `subscriptions list|sync` names two
        if command is None or (
            isinstance(command, click.Group) and any(sub not in command.commands for sub in subcommands)
        ):
            wrong.append(f"{path.name}: altinn-receiver {line}")
    assert not wrong, "the docs show commands that do not exist:\n" + "\n".join(wrong)


def test_every_handler_the_docs_use_exists() -> None:
    used = {(path.name, name) for path in DOCS for name in re.findall(r'^use = "([^"]+)"', path.read_text(), re.M)}
    assert used, "the docs show [handlers.NAME] use = ..."
    assert not [f"{doc}: use = {name!r}" for doc, name in used if name not in BUILTINS and ":" not in name]
