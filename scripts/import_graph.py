"""The import graph's figures: rooms (wings: campaigns' subpackages and top modules, plus flows, tasks, operations),
floors (the longest chain of wings importing wings), imports, and circles between modules and between wings.

    .venv/bin/python scripts/import_graph.py [-v]

The rules themselves are import-linter's contracts in pyproject.toml, checked by tests/project/test_architecture.py; this
prints the figures the design page and the issue notes quote. -v lists every import between wings.
"""

from __future__ import annotations

import collections
import functools
import sys
from pathlib import Path

import grimp

ROOTS = ("campaigns", "flows", "tasks", "operations")
PROJECT = Path(__file__).resolve().parents[1]


def wing(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "campaigns" and len(parts) > 1 else parts[0]


def strongly_connected(nodes, edges) -> list[list[str]]:
    """Tarjan's components: a component of more than one node is a circle."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            found.append(component)

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def main(verbose: bool) -> None:
    graph = grimp.build_graph(*ROOTS, cache_dir=None)
    modules = sorted(graph.modules)
    imports = {m: {i for i in graph.find_modules_directly_imported_by(m) if i.split(".")[0] in ROOTS}
               for m in modules}
    between = collections.Counter((wing(m), wing(i)) for m, targets in imports.items() for i in targets
                                  if wing(m) != wing(i))
    wings = sorted({wing(m) for m in modules})
    wing_edges = collections.defaultdict(set)
    for a, b in between:
        wing_edges[a].add(b)
    components = strongly_connected(wings, wing_edges)
    component_of = {w: n for n, c in enumerate(components) for w in c}

    @functools.lru_cache(None)
    def floor(c: int) -> int:
        below = {component_of[b] for w in components[c] for b in wing_edges[w]} - {c}
        return 1 + max((floor(d) for d in below), default=0)

    print(f"modules {len(modules)}, imports between them {sum(len(t) for t in imports.values())}")
    print(f"module circles {sum(1 for c in strongly_connected(modules, imports) if len(c) > 1)}")
    print(f"rooms {len(wings)}, floors {max(floor(c) for c in range(len(components)))}, "
          f"wing-to-wing imports {len(between)} ({sum(between.values())} module imports)")
    print(f"wing circles {sum(1 for c in components if len(c) > 1)}")
    files = [*PROJECT.glob("src/**/*.py"), *PROJECT.glob("tasks/*.py"), *PROJECT.glob("flows/*.py")]
    sizes = sorted(((len(f.read_text(encoding="utf-8").splitlines()), f.relative_to(PROJECT)) for f in files
                    if "migrations" not in f.parts), reverse=True)
    print("largest files:", ", ".join(f"{f} ({n})" for n, f in sizes[:5]))
    if verbose:
        for (a, b), n in sorted(between.items()):
            print(f"  {a} -> {b} ({n})")


if __name__ == "__main__":
    main("-v" in sys.argv)
