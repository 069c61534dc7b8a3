"""The call's limits by default, one home for each: the avatar's join deadline and the idle and
session timeouts LemonSlice documents (60 s of silence, 30 min per session)."""

from __future__ import annotations

JOIN_TIMEOUT = 30.0  # seconds from the call's start for the avatar to join
IDLE_TIMEOUT = 60.0  # the avatar leaves after this much silence
SESSION_TIMEOUT = 1800.0  # the avatar's session (GPU) limit
TIMEOUT_TOLERANCE = 5.0  # a length within this of a timeout counts as hitting it
