"""scripts/import_cycles.py, which `make lint` runs: it finds cycles, and monitor has none
besides the pending ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = next(p for p in Path(__file__).resolve().parents
              if (p / "pyproject.toml").exists()) / "scripts" / "import_cycles.py"


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cycle_between_modules_and_their_packages_fails() -> None:
    edges = {"monitor.a.x": {"monitor.b.y"}, "monitor.b.y": {"monitor.a.z"},
             "monitor.a.z": set(), "monitor.c": {"monitor.a.x"}}
    failing, waiting = checker().report(edges, set())
    assert failing == ["package cycle: monitor.a <-> monitor.b "
                       "(monitor.a.x -> monitor.b.y; monitor.b.y -> monitor.a.z)"]
    assert waiting == []
    edges["monitor.a.z"] = {"monitor.a.x"}
    failing, _ = checker().report(edges, set())
    assert any(line.startswith("module cycle: monitor.a.x <-> monitor.a.z <-> monitor.b.y")
               for line in failing)


def test_a_cycle_closed_only_by_a_pending_edge_is_reported_not_failed() -> None:
    edges = {"monitor.a.x": {"monitor.b.y"}, "monitor.b.y": {"monitor.a.z"}, "monitor.a.z": set()}
    failing, waiting = checker().report(edges, {("monitor.b", "monitor.a")})
    assert failing == [] and len(waiting) == 1


def test_monitor_has_no_import_cycle_besides_the_pending_ones() -> None:
    module = checker()
    failing, _ = module.report(module.graph(), module.PENDING)
    assert failing == []
