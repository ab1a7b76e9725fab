"""The shape of the code: no import cycles, no oversized modules, components use the facades.

Imports are read from the source (``ast``), so a cycle hidden in a function body counts;
imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"interfaces": ROOT / "interfaces" / "src", "framework": ROOT / "framework" / "src"}
SOURCE_ROOTS = [*LAYERS.values(), *sorted(ROOT.glob("components/*/src"))]
MAX_LINES = 450
FRAMEWORK_FACADES = (
    "agentbus.framework",
    "agentbus.framework.auth",
    "agentbus.framework.cli",
    "agentbus.framework.deploy",
    "agentbus.framework.deploy.backends",
    "agentbus.framework.deploy.policy",
    "agentbus.framework.deploy.promote",
    "agentbus.framework.testing",
)


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(path: Path, package: str) -> Iterator[tuple[str, list[str]]]:
    """(imported module, the names taken from it) for every import that runs, resolving
    relative ones; ``import a.b`` takes no names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [alias.name for alias in node.names]


def import_graph(src: Path) -> dict[str, set[str]]:
    files = {module_name(p, src): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported, names in runtime_imports(path, package):
            submodules = {f"{imported}.{n}" for n in names} & files.keys()
            if len(submodules) < len(names) or not names:  # takes names defined in `imported`
                targets.add(imported)
            targets.update(submodules)  # `from pkg import module` imports the module
        targets &= files.keys()
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def is_package_parent(importer: str, imported: str) -> bool:
    """``a.b.c`` importing ``a.b`` runs ``a/b/__init__`` first anyway: not a cycle to count
    unless that ``__init__`` imports ``a.b.c`` back (then the edge exists both ways)."""
    return importer.startswith(imported + ".")


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_no_import_cycle(layer: str) -> None:
    graph = import_graph(LAYERS[layer])
    pruned = {
        name: {t for t in targets if not is_package_parent(name, t) or name in graph.get(t, ())}
        for name, targets in graph.items()
    }
    cycle = find_cycle(pruned)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("src", SOURCE_ROOTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_oversized(src: Path) -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in src.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines (split them by idea): {big}"


@pytest.mark.parametrize("src", sorted(ROOT.glob("components/*/src")), ids=lambda p: p.parts[-2])
def test_components_import_the_framework_through_its_facades(src: Path) -> None:
    internal = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            internal.update(
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
                for name in names
                if name.startswith("agentbus.framework") and name not in FRAMEWORK_FACADES
            )
    assert not internal, "import these from agentbus.framework (or a public sub-package):\n" + (
        "\n".join(sorted(internal))
    )


def test_a_service_process_does_not_load_the_deployer() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agentbus.framework; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('agentbus.framework.deploy.', 'docker'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip()
    for heavy in ("deploy.promote", "deploy.probe", "deploy.backends", "'docker"):
        assert heavy not in loaded, f"importing agentbus.framework loads {heavy}: {loaded}"


def test_only_the_service_base_builds_event_subscriptions() -> None:
    """Deploy roles apply to every subscription because the framework makes them all
    (``Service.subscribe``); a component building its own would consume while on standby."""
    builders = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for src in SOURCE_ROOTS
        for path in src.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("EventSubscription")
    )
    places = {place.rsplit(":", 1)[0] for place in builders}
    assert places == {"framework/src/agentbus/framework/service.py"}, (
        f"EventSubscription built outside Service.subscribe: {builders}"
    )
    assert len(builders) == 1, f"one place builds them: {builders}"
