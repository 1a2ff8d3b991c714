"""The suite stands alone: a clone with nothing beside it runs it, from any virtualenv, one test module at a time.

Three rules, each a scan over every file under tests/ that reports the offending file:line:
- no module imports a test module (shared helpers belong in a *_support.py module);
- nothing points into a virtualenv folder (start subprocesses with `sys.executable`);
- nothing points at a folder named shared outside the repo (test data lives in tests/data).
And tests/data/README.md says what every file beside it is and where it comes from.

The scans catch the usual spellings of such paths, not every way a program can build one. Each rule is also run
against a planted offence, so a scan that stopped finding anything would fail here too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

import pytest

from tests.support import DATA, REPO

TESTS = Path(__file__).parent
Finding = tuple[int, str]  # a line number and what is wrong on it
Check = Callable[[Path, str], Iterator[Finding]]

# Written with [.] so that this file's own patterns are no offence.
VENV_PATH = re.compile(r"[.]venv[/\\]|[/\\][.]venv\b")
SHARED_SIBLING = re.compile(r"[.][.][/\\]shared\b")


def suite_files() -> list[Path]:
    """Every text file under tests/, caches left out."""
    found = []
    for path in sorted(TESTS.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found.append(path)
    return found


def parents_of(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imported_test_modules(path: Path, text: str) -> Iterator[Finding]:
    """A test module imported by its dotted name, by name from the tests package, or relatively."""
    if path.suffix != ".py":
        return
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = node.module or ""
            # A name imported from the tests package itself (or `from . import`) is a module, not a helper.
            from_package = (node.level == 0 and package == "tests") or (node.level > 0 and not package)
            modules = [package, *(alias.name for alias in node.names if from_package)]
        else:
            continue
        for module in modules:
            if is_test_module(module):
                yield node.lineno, f"imports test module {module}"


def lines_matching(pattern: re.Pattern[str], text: str) -> Iterator[Finding]:
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            yield number, line.strip()


def joined_as_path(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """`node` is an operand of `/` or an argument of a call (`Path(...)`, `os.path.join(...)`, `.joinpath(...)`)."""
    parent = parents.get(node)
    if isinstance(parent, ast.BinOp):
        return isinstance(parent.op, ast.Div)
    return isinstance(parent, ast.Call) and node in parent.args


def venv_paths(path: Path, text: str) -> Iterator[Finding]:
    """A path into or to a virtualenv folder, in any text, or `.venv` joined to a path in code.

    A bare `.venv` elsewhere is no path (e.g. an entry the deploy tests expect in .dockerignore).
    """
    yield from lines_matching(VENV_PATH, text)
    if path.suffix != ".py":
        return
    tree = ast.parse(text, str(path))
    parents = parents_of(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == ".venv" and joined_as_path(node, parents):
            yield node.lineno, "joins .venv to a path"


def climbs_out(node: ast.AST) -> bool:
    """`x.parent` or `x.parents[n]`: a folder above the one `x` names."""
    if isinstance(node, ast.Subscript):
        node = node.value
        return isinstance(node, ast.Attribute) and node.attr == "parents"
    return isinstance(node, ast.Attribute) and node.attr == "parent"


def first_part(value: str) -> str:
    parts = PurePosixPath(value).parts
    return parts[0] if parts else ""


def shared_paths(path: Path, text: str) -> Iterator[Finding]:
    """A folder named shared reached by climbing out of a folder, or by an absolute path, in any text or in code."""
    yield from lines_matching(SHARED_SIBLING, text)
    if path.suffix != ".py":
        return
    for node in ast.walk(ast.parse(text, str(path))):
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Div)
            and climbs_out(node.left)
            and isinstance(node.right, ast.Constant)
            and isinstance(node.right.value, str)
            and first_part(node.right.value) == "shared"
        ):
            yield node.lineno, f"{ast.unparse(node)} is beside a parent folder"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("/")
            and "shared" in PurePosixPath(node.value).parts
        ):
            yield node.lineno, f"{node.value!r} is an absolute path"


def offences(check: Check, files: Iterable[Path]) -> list[str]:
    """`check`'s findings as `path:line: what`, the path relative to the repo where it is inside it."""
    found = []
    for path in files:
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        found += [f"{shown}:{line}: {what}" for line, what in sorted(check(path, path.read_text(encoding="utf-8")))]
    return found


def test_no_module_imports_a_test_module() -> None:
    found = offences(imported_test_modules, suite_files())
    assert not found, "move what they share into a *_support.py module:\n" + "\n".join(found)


def test_nothing_points_into_a_virtualenv() -> None:
    found = offences(venv_paths, suite_files())
    assert not found, "use sys.executable, the interpreter running the tests:\n" + "\n".join(found)


def test_nothing_points_at_a_shared_folder_outside_the_repo() -> None:
    found = offences(shared_paths, suite_files())
    assert not found, "a clone has nothing beside it; put the file in tests/data:\n" + "\n".join(found)


def test_the_scans_cover_the_whole_suite() -> None:
    names = {path.relative_to(TESTS).as_posix() for path in suite_files()}
    assert {"test_suite_hygiene.py", "support.py", "data/README.md", "data/pull-page.json"} <= names


def test_every_data_file_says_what_it_is_and_where_it_comes_from() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    undescribed = [
        path.name for path in sorted(DATA.iterdir()) if path.name != "README.md" and f"`{path.name}`" not in readme
    ]
    assert not undescribed, f"add a row to tests/data/README.md for {undescribed}"


# Offences planted in files of their own; the parts are joined here so that this file holds none of them.
PLANTED: list[tuple[Check, str, str, list[int]]] = [
    (
        imported_test_modules,
        "test_planted.py",
        "import os\n"
        + "from {0}test_catchup_cursor import event\nimport {0}test_cli\nfrom tests import test_cli\n".format("tests.")
        + "from .test_cli import cli\nfrom . import test_cli\nfrom tests.catchup_support import event\n",
        [2, 3, 4, 5, 6],
    ),
    (
        venv_paths,
        "planted_support.py",
        'CLI = [str(REPO / ".venv" / "bin" / "python")]\n'
        f"PYTHON = {'/'.join(['', 'opt', 'app', '.venv', 'bin', 'python'])!r}\n"
        'IGNORED = {".git", ".venv"}\nHOME = os.path.join(REPO, ".venv")\n',
        [1, 2, 4],
    ),
    (venv_paths, "README.md", "Run " + "/".join([".venv", "bin", "pytest"]) + " -q\n", [1]),
    (
        shared_paths,
        "planted_support.py",
        "REPO = Path(__file__).parents[1]\n"
        "SAMPLES = REPO.parent / " + repr("/".join(["shared", "altinn"])) + "\n"
        f"SPEC = Path(__file__).resolve().parents[2] / {'shared'!r} / 'spec.json'\n"
        f"CONTRACT = {'/'.join(['', 'work', 'shared', 'events.md'])!r}\n"
        "DATA = Path(__file__).parent / 'data'\n",
        [2, 3, 4],
    ),
    (shared_paths, "README.md", "See " + "/".join(["..", "shared", "altinn"]) + " for the facts.\n", [1]),
]


@pytest.mark.parametrize(("check", "name", "text", "lines"), PLANTED)
def test_each_scan_finds_a_planted_offence_and_says_where(
    tmp_path: Path, check: Check, name: str, text: str, lines: list[int]
) -> None:
    planted = tmp_path / name
    planted.write_text(text, encoding="utf-8")
    found = offences(check, [planted])
    assert [entry.split(":")[1] for entry in found] == [str(line) for line in lines], found
    assert all(entry.startswith(f"{planted}:") for entry in found)
