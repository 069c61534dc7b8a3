"""Fails (exit 1) on an import cycle in monitor: between modules, and between its parts (the
subpackages monitor.calls, .intake, ... and each top-level module).

Every import counts, those under TYPE_CHECKING and inside functions too: a cycle that only a
late import hides is still two parts that need each other. Run: python scripts/import_cycles.py
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "monitor"
# Part edges (importer, imported) of cycles whose removal is under way: reported, not failed on.
# Remove an entry once its edge is gone.
PENDING: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The monitor modules a module imports (a `from pkg import name` of a submodule counts as
    that submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    known = set(files)
    return {module: set(imported(ast.parse(path.read_text()), module,
                                 path.name == "__init__.py", known))
            for module, path in files.items()}


def part(module: str) -> str:
    """monitor.calls.tracker -> monitor.calls; monitor.app -> monitor.app."""
    return ".".join(module.split(".")[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def part_edges(edges: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> the module imports that make the edge."""
    out: dict[str, dict[str, list[str]]] = {}
    for module, targets in edges.items():
        for target in targets:
            if part(module) != part(target) and part(module) != PACKAGE \
                    and part(target) != PACKAGE:
                out.setdefault(part(module), {}).setdefault(part(target), []).append(
                    f"{module} -> {target}")
    return out


def report(edges: dict[str, set[str]], pending: set[tuple[str, str]]
           ) -> tuple[list[str], list[str]]:
    """(cycles, pending cycles): one line each. A pending cycle is one that only the pending
    part edges close."""
    failing = [f"module cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    by_part = part_edges(edges)
    found = cycles({p: set(t) for p, t in by_part.items()})
    without_pending = cycles({p: {t for t in targets if (p, t) not in pending}
                              for p, targets in by_part.items()})
    waiting = []
    for component in found:
        members = set(component)
        why = sorted(line for p in component for t, lines in by_part[p].items()
                     if t in members for line in lines)
        line = f"package cycle: {' <-> '.join(component)} ({'; '.join(why)})"
        if any(members & set(other) for other in without_pending):
            failing.append(line)
        else:
            waiting.append(line)
    return failing, waiting


def main() -> int:
    failing, waiting = report(graph(), PENDING)
    for line in waiting:
        print(f"pending: {line}")
    for line in failing:
        print(line)
    if failing:
        print(f"{len(failing)} import cycle(s) in {PACKAGE}", file=sys.stderr)
        return 1
    print(f"no import cycle in {PACKAGE} besides {len(waiting)} pending")
    return 0


if __name__ == "__main__":
    sys.exit(main())
