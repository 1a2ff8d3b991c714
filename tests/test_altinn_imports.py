"""The modules of `receiver.altinn` import each other without a cycle: the transport sits below the token cache, and
only the module that wires them together knows both (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import receiver.altinn

PACKAGE = "receiver.altinn"
PACKAGE_DIR = Path(receiver.altinn.__file__).parent
INIT = "__init__"


def imported_modules(tree: ast.Module, modules: set[str]) -> set[str]:
    """The package's modules `tree` imports, `TYPE_CHECKING` blocks included; importing a name from the package
    itself counts as importing its `__init__`."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:  # above the package
                continue
            base = ".".join(filter(None, [PACKAGE, node.module])) if node.level else node.module or ""
            names = [base] if base != PACKAGE else [f"{PACKAGE}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE:
                found.add(INIT)
            elif name.startswith(PACKAGE + "."):
                module = name[len(PACKAGE) + 1 :].split(".")[0]
                found.add(module if module in modules else INIT)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    files = {path.stem: path for path in PACKAGE_DIR.glob("*.py")}
    return {
        module: imported_modules(ast.parse(path.read_text(encoding="utf-8")), set(files)) - {module}
        for module, path in sorted(files.items())
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_package_imports_form_no_cycle() -> None:
    graph = import_graph()
    assert {"http", "tokens", "auth", "clients"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in receiver/altinn: " + " -> ".join(cycle or [])


def test_the_transport_does_not_import_the_token_cache() -> None:
    assert import_graph()["http"] == {"errors"}


def test_a_cycle_is_reported_with_its_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
