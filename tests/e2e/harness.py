"""What the e2e fixtures share with the tests that use them: the logs attached to a failing
test's report, and the type of the `verdict` fixture."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

LOGS = pytest.StashKey[list[tuple[str, Path]]]()

# GET /v1/calls/{room} once the room's call has finished
Verdict = Callable[[str], Awaitable[dict]]


def register_log(request: pytest.FixtureRequest, name: str, path: Path) -> None:
    """Attach the log at `path` to the report of the test, should it fail."""
    request.node.stash.setdefault(LOGS, []).append((name, path))
