"""The package's imports point down its layers (DESIGN.md) and form no circle.

Read from the source, lazy imports inside functions included (they are
dependencies all the same); imports under ``if TYPE_CHECKING:`` are left
out, as they never run. A package's ``__init__`` counts as a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "agent_node"

#: What the core may never import (DESIGN.md, "Layers of the package").
CORE = ("engine", "store", "workflow", "nodes")
EDGES = ("a2a", "security", "integrations", "cli", "node", "demo")
HEAVY = ("starlette", "uvicorn", "httpx", "grpc", "litellm", "mcp", "opentelemetry")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The names ``path`` imports when it runs: modules of the package, and
    the top-level names of others."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = [f"{node.module}.{alias.name}" for alias in node.names]
            inner = [s for s in subs if s in known]
            found.update(inner or [node.module])
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {t for t in imports(path, known) if t in known and t != name}
        for name, path in known.items()
    }


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert circles(graph()) == []


def test_the_checker_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c"]]


def test_the_core_imports_no_edge_and_no_heavy_library() -> None:
    known = modules()
    wrong = []
    for name, path in known.items():
        layer = name.split(".")[1] if "." in name else ""
        if layer not in CORE:
            continue
        for target in imports(path, known):
            top = target.split(".")
            if top[0] in HEAVY or (top[0] == "agent_node" and len(top) > 1 and top[1] in EDGES):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_wire_contract_is_a_leaf_and_peers_never_reach_the_server() -> None:
    edges = graph()
    wrong = [
        f"{name} imports {target}"
        for name, targets in edges.items()
        for target in targets
        if (
            (name.startswith("agent_node.a2a.protocol") and target.startswith("agent_node.a2a."))
            and not target.startswith("agent_node.a2a.protocol")
        )
        or (name.startswith("agent_node.a2a.peers") and target.startswith("agent_node.a2a.server"))
    ]
    assert wrong == []
