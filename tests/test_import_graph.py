"""The house keeps its shape: no import cycle, and imports run one way between the layers.

`server → broadcast`, `server → stock`; `broadcast` never imports `stock` or `server`; `stock` imports
nothing of ours; `standins` (stand-in external platforms) imports nothing of ours; `loadtest` talks to
LiveDrop through its public surfaces only. `bench` may use the engine (`stock`), the hub (`broadcast`)
and `loadtest`; its in-process fan-out variants reach into named server modules on purpose (they
measure the server's own fold without HTTP), and those are listed below as the only exceptions.

The graph is read from the source with `ast` (imports inside functions count too), so a lazy import
cannot hide a cycle. Pure: no network, no import of the modules themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "broadcast", "stock", "loadtest", "standins", "bench")

# What each top-level package must never import (beyond itself).
FORBIDDEN: dict[str, frozenset[str]] = {
    "stock": frozenset({"server", "broadcast", "loadtest", "standins", "bench"}),
    "broadcast": frozenset({"server", "stock", "loadtest", "standins", "bench"}),
    "server": frozenset({"loadtest", "bench"}),  # the CLI fronts the stand-ins (`livedrop standin`)
    "loadtest": frozenset({"server", "stock", "broadcast", "standins", "bench"}),
    "standins": frozenset({"server", "broadcast", "stock", "loadtest", "bench"}),
    "bench": frozenset({"server", "standins"}),
}

# bench modules allowed to import server internals, and which ones: the in-process fan-out variants
# drive the show fold and mint viewer tokens without a running server; the imports bench times the
# pure feed planner and checkout-link builder, which no HTTP round trip may blur.
BENCH_EXCEPTIONS: dict[str, frozenset[str]] = {
    "bench.fanout": frozenset({"server.shows.catalog", "server.shows.node"}),
    "bench.fanout_lib.live_viewers": frozenset({"server.viewers.tokens"}),
    "bench.imports": frozenset(
        {
            "server.checkout.config",
            "server.checkout.links",
            "server.shows.feeds.options",
            "server.shows.feeds.parse",
            "server.shows.importer",
        }
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(modules: set[str], name: str) -> str | None:
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (absolute and relative, at any depth of the file)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    names = set(files)
    edges: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package[: len(package) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                resolved = _resolve(names, target)
                if resolved and resolved != mod:
                    edges[mod].add(resolved)
    return edges


def _package_reexport(edge_from: str, edge_to: str) -> bool:
    """A package's `__init__` importing its own children (or a child its parent) is not layering."""
    return edge_to.startswith(edge_from + ".") or edge_from.startswith(edge_to + ".")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), package re-exports left out."""
    graph = {m: {t for t in ts if not _package_reexport(m, t)} for m, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def backwards(edges: dict[str, set[str]]) -> list[str]:
    """Every import that runs against the layering, as "importer -> imported"."""
    wrong: list[str] = []
    for mod, targets in edges.items():
        top = mod.split(".")[0]
        for target in sorted(targets):
            if target.split(".")[0] not in FORBIDDEN[top]:
                continue
            if target in BENCH_EXCEPTIONS.get(mod, frozenset()):
                continue
            wrong.append(f"{mod} -> {target}")
    return sorted(wrong)


def test_graph_is_read() -> None:
    """Guard against a check that passes because it saw nothing."""
    edges = import_graph()
    assert "server.app" in edges
    assert any(t.startswith("stock") for t in edges["server.app"] | set().union(*edges.values()))


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" ".join(c) for c in found)


def test_imports_run_one_way() -> None:
    found = backwards(import_graph())
    assert found == [], "backwards imports:\n" + "\n".join(found)


def test_the_checks_catch_what_they_mean() -> None:
    """The checks themselves fail on a cycle and on a backwards import."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert backwards({"broadcast.feed": {"stock.keys"}, "server.app": {"stock"}}) == ["broadcast.feed -> stock.keys"]
