"""The layout's rules, read from the source: a lower layer never imports a higher one, the simulator stays an
independent stand-in, and the receiver loads it only for the commands that run it. docs/architecture.md says why."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("receiver", "handlers", "altinn_sim")

# Each part of the code and its layer: a module may import only from lower layers, or from its own part.
LAYERS: dict[str, float] = {
    "receiver": 0,  # the package root: __version__
    "receiver.durations": 0,
    "receiver.timeutil": 0,
    "receiver.text": 0,  # what text can be stored and shown: the doors, the store, the command line
    "receiver.server_thread": 0,
    "receiver.observability.logs": 0,
    "receiver.observability.tracing": 0.25,  # the OpenTelemetry facade: spans carry their ids into log lines
    "receiver.scopes": 0,  # the scopes per family of Altinn calls: the config checks them, the clients use them
    "receiver.validation": 0.5,  # the one validator: the config's sections, handlers' Options, the simulator's
    "receiver.config": 1,
    "altinn_sim": 1.5,  # above the small utilities only: never the Altinn clients it stands in for
    "receiver.store": 2,
    "receiver.altinn": 2,
    "receiver.observability": 3,
    "receiver.runtime": 4,
    "receiver.web": 5,
    "handlers": 5,
    "receiver.sync": 6,
    "receiver.worker": 6,
    "receiver.app": 7,
    "receiver.console": 7.5,  # the operator console: its pages show the app's runtime; `serve` starts it
    "handlers.testing": 7,  # runs a plugin's handler as the worker would, for the plugin's own tests
    "receiver.onboarding": 8,
    "receiver.cli": 9,
    "receiver.__main__": 10,
}
# The only receiver modules that import the simulator when they are imported; the command line loads them lazily.
SIMULATOR_USERS = {"receiver.cli.simulator", "receiver.onboarding.demo", "receiver.cli.demo"}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    top_level: bool
    type_only: bool
    """Under `if TYPE_CHECKING:`: names for annotations, nothing loaded at run time."""

    def __str__(self) -> str:
        return f"{self.source.replace('.', '/')}.py:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The longest LAYERS key that `module` is or lies under."""
    candidates = [key for key in LAYERS if module == key or module.startswith(key + ".")]
    assert candidates, f"{module} is in no layer: add it to LAYERS in tests/test_layout.py"
    return max(candidates, key=len)


def project_modules() -> set[str]:
    return {module_name(path) for package in PACKAGES for path in (REPO / package).rglob("*.py")}


def resolve(name: str, modules: set[str]) -> str:
    """The module an import names: `from pkg import sub` names pkg.sub when that is a module, else pkg."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def project_imports() -> Iterator[Import]:
    """Every import of the project's own modules by the project's modules, resolved to the module it loads."""
    modules = project_modules()
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            source = module_name(path)
            tree = ast.parse(path.read_text(), filename=str(path))
            type_only = {
                id(child)
                for node in tree.body
                if isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}
                for child in node.body
            }
            top_level = {id(node) for node in tree.body} | type_only
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [f"{node.module}.{alias.name}" for alias in node.names]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                for target in targets:
                    if target.split(".")[0] in PACKAGES:
                        yield Import(
                            source, resolve(target, modules), node.lineno, id(node) in top_level, id(node) in type_only
                        )


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{imp} (layer {LAYERS[part_of(imp.target)]:g} above {LAYERS[part_of(imp.source)]:g})"
        for imp in project_imports()
        if part_of(imp.source) != part_of(imp.target) and LAYERS[part_of(imp.target)] >= LAYERS[part_of(imp.source)]
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_simulator_never_imports_the_altinn_clients_or_anything_above_the_utilities() -> None:
    allowed = {"receiver", "receiver.config", "receiver.durations", "receiver.timeutil", "receiver.server_thread"}
    allowed |= {"receiver.observability.logs", "receiver.validation"}
    wrong = [
        str(imp)
        for imp in project_imports()
        if imp.source.startswith("altinn_sim") and imp.target.startswith("receiver") and imp.target not in allowed
    ]
    assert not wrong, "the simulator reaches into the receiver:\n" + "\n".join(wrong)


def test_the_receiver_imports_the_simulator_only_where_it_runs_it() -> None:
    eager = [
        str(imp)
        for imp in project_imports()
        if imp.target.startswith("altinn_sim") and imp.source.startswith("receiver") and imp.top_level
        if imp.source not in SIMULATOR_USERS
    ]
    assert not eager, "import the simulator inside the function that runs it:\n" + "\n".join(eager)


def test_serving_loads_no_simulator_code() -> None:
    """Everything `serve` and the reading commands import, imported for real: no module of altinn_sim comes along."""
    modules = sorted(
        module_name(path)
        for package in ("receiver", "handlers")
        for path in (REPO / package).rglob("*.py")
        if module_name(path) not in SIMULATOR_USERS and module_name(path) != "receiver.__main__"
    )
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'altinn_sim')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "", f"importing the receiver loaded {loaded.stdout.strip()}"


def test_no_two_modules_import_each_other_even_through_others() -> None:
    """Module by module. In the receiver and the handlers, type-checking imports count too (`receiver/altinn/` had
    http -> tokens -> http only for an annotation, and it still tied the two together). The simulator's route modules
    name `SimState` in annotations while `SimState` holds their models: a cycle of names only, allowed there."""
    edges: dict[str, set[str]] = {}
    for imp in project_imports():
        if imp.target != imp.source and not (imp.type_only and imp.source.startswith("altinn_sim")):
            edges.setdefault(imp.source, set()).add(imp.target)
    assert (cycle := find_cycle(edges)) == [], " -> ".join(cycle)


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One cycle in the graph, as the nodes along it, or [] when there is none."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return []

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_built_in_handlers_use_only_what_plugins_can_use() -> None:
    """A built-in is written as a plugin would be: the `handlers` API, the Altinn clients and models `ctx.altinn`
    gives, the store's time format; never another built-in's module or the receiver's inside (their tables, the
    worker). `confirm` and `mark_as_read` share their base class, `handlers.recipient_action`; the forward handlers
    share their message, `handlers.envelope`, and their metrics, templates and connection, `handlers.forwarding`."""
    public = {"handlers", "receiver.altinn", "receiver.timeutil", "handlers.recipient_action"}
    public |= {"handlers.envelope", "handlers.forwarding"}
    wrong = [
        str(imp)
        for imp in project_imports()
        if imp.source.startswith("handlers.") and imp.source not in ("handlers.api", "handlers.testing")
        if imp.target not in public and not imp.type_only
    ]
    assert not wrong, "built-in handlers reach past the plugin API:\n" + "\n".join(wrong)


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) == []


def test_the_altinn_transport_knows_nothing_of_tokens() -> None:
    """`altinn/http.py` is the bottom of the Altinn clients: the token cache uses it, never the other way round."""
    imported = {imp.target for imp in project_imports() if imp.source == "receiver.altinn.http"}
    assert imported == {"receiver", "receiver.altinn.errors", "receiver.altinn.calls"}
    # What the transport tells about its calls (metrics, spans) knows nothing of the clients either.
    observer = {imp.target for imp in project_imports() if imp.source == "receiver.altinn.calls"}
    assert observer == {"receiver.observability.tracing"}
