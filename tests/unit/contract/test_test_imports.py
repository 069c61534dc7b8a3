"""No module imports a test module or a conftest: what tests share lives in tests/support/ (or in
a suite's own helper modules, such as tests/e2e/harness.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("tests", "benchmarks", "scripts")


def is_test_module(dotted: str) -> bool:
    last = dotted.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def imported_test_modules(source: str) -> list[str]:
    """The test modules and conftests that `source` imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if is_test_module(node.module):
                found.append(node.module)
            else:  # `from tests.e2e import test_observer`
                found += [f"{node.module}.{alias.name}" for alias in node.names
                          if is_test_module(alias.name)]
    return found


def test_the_check_sees_every_form_of_import() -> None:
    source = """
import tests.test_a
from tests.conftest import RunningMonitor
from tests.e2e import test_observer, metrics
def later():
    from tests.unit.test_b import helper
from tests.support.webhooks import KEY
"""
    assert imported_test_modules(source) == [
        "tests.test_a", "tests.conftest", "tests.e2e.test_observer", "tests.unit.test_b"]


def test_no_module_imports_a_test_module() -> None:
    files = [path for top in SCANNED for path in sorted((ROOT / top).rglob("*.py"))]
    assert len(files) > 50  # the scan found the tree
    offenders = {str(path.relative_to(ROOT)): imported
                 for path in files
                 if (imported := imported_test_modules(path.read_text()))}
    assert offenders == {}
