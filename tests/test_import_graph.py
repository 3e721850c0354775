"""No import cycle between the project's top-level packages (issue 15).

The graph's nodes are the top-level packages (``bot``, ``channels``, ``conversations``, ``handoff``,
``kb_index``, ``ops``, ``storage``, ``store``, ``bench``, ``scenarios``) and top-level modules
(``settings``, ``server``, ``api_docs``); ``tests/`` is not part of it. An edge A -> B is any
``import B...`` / ``from B... import`` in a file of A, read with ``ast`` (nothing is imported):

- module-level imports and imports inside functions both count: an import deferred into a function
  still couples the two packages, and hiding one there is how a cycle is usually papered over;
- imports under ``if TYPE_CHECKING:`` count too (the annotation still names the other package);
- relative imports stay inside their package and add no edge;
- a folder of scripts inside a package that is not itself a package (no ``__init__.py``, e.g.
  Alembic's ``storage/migrations``, which imports every package's tables so that autogenerate sees
  them) is a node of its own, named by its path: nothing imports it, it is run by its tool.

Run it as a script to print the graph and its cycles: ``python tests/test_import_graph.py``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED = {"tests", "data", "models", "docs", "requirements", "scripts", "nlu_data", "help_centre"}


def project_nodes(root: Path = ROOT) -> dict[str, list[Path]]:
    """Top-level package or module name (or script folder path) -> its Python files."""
    nodes: dict[str, list[Path]] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name in EXCLUDED:
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            for file in sorted(path.rglob("*.py")):
                folder = file.parent
                while folder != path and (folder / "__init__.py").exists():
                    folder = folder.parent
                nodes.setdefault(folder.relative_to(root).as_posix(), []).append(file)
        elif path.suffix == ".py":
            nodes[path.stem] = [path]
    return nodes


def imported_names(tree: ast.AST) -> Iterator[str]:
    """Absolute module names imported anywhere in ``tree`` (module level, functions, TYPE_CHECKING)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    nodes = project_nodes(root)
    graph: dict[str, set[str]] = {name: set() for name in nodes}
    for name, files in nodes.items():
        for path in files:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for module in imported_names(tree):
                top = module.split(".")[0]
                if top in nodes and top != name:
                    graph[name].add(top)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one node (each is at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def two_way_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph[b])


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    for package, body in {
        "alpha": "import beta.x\n",
        "beta": "def f():\n    from gamma import y\n",
        "gamma": "from alpha.z import w\n",
        "delta": "from . import alpha\n",
    }.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(body)
    (tmp_path / "delta" / "scripts").mkdir()
    (tmp_path / "delta" / "scripts" / "env.py").write_text("import alpha\n")
    graph = package_graph(tmp_path)
    assert graph["delta"] == set() and graph["delta/scripts"] == {"alpha"}
    assert strongly_connected(graph) == [["alpha", "beta", "gamma"]]


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    assert {"settings", "storage", "kb_index", "handoff", "channels", "conversations", "bot"} <= graph.keys()
    cycles = strongly_connected(graph)
    assert cycles == [], f"import cycles between packages: {cycles}; two-way edges: {two_way_edges(graph)}"


if __name__ == "__main__":
    graph = package_graph()
    for name in sorted(graph):
        print(f"{name} -> {', '.join(sorted(graph[name])) or '-'}")
    cycles = strongly_connected(graph)
    print("cycles (strongly connected components):", cycles or "none")
    print("two-way edges:", two_way_edges(graph) or "none")
    sys.exit(1 if cycles else 0)
