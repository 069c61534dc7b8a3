"""The troubleshooting guide's sections, as its headings name them: the verdicts' rules and the
dashboards' panels and alerts point at them."""

from __future__ import annotations

CONNECT = "Handle avatar connect/disconnect events"
ROOM_ERRORS = "Handle room errors"
PIPELINE = "Catch pipeline errors"
STARTUP = "Handle startup failures"
TIMEOUTS = "Check timeouts"
