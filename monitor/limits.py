"""Defaults, one home for each: the call's limits (the avatar's join deadline, the idle and
session timeouts LemonSlice documents: 60 s of silence, 30 min per session) and the sidecar's
capacities."""

from __future__ import annotations

from avatar_monitor_agent.schema import AVATAR_JOIN_TIMEOUT

JOIN_TIMEOUT = AVATAR_JOIN_TIMEOUT  # seconds from the call's start for the avatar to join
IDLE_TIMEOUT = 60.0  # the avatar leaves after this much silence
SESSION_TIMEOUT = 1800.0  # the avatar's session (GPU) limit
TIMEOUT_TOLERANCE = 5.0  # a length within this of a timeout counts as hitting it
# An avatar (a billed session) alone in its room this long is worth a warning.
UNATTENDED_AFTER = 300.0
# The avatar's audio or video off (unpublished, muted) longer than this is an interruption; the
# unpublishes that come with its leave (the same instant, measured) stay under it.
INTERRUPTION_GRACE = 5.0
# Avatars that announce readiness (bot_ready), by identity glob or lk.avatar_provider: LemonSlice's.
READY_IDENTITIES = ("lemonslice-*",)
READY_PROVIDERS = ("lemonslice",)

MAX_CALLS = 50_000  # calls tracked at once (the oldest are evicted beyond)
OBSERVE_MAX_ROOMS = 200  # rooms the observer watches at once
TOKEN_LEEWAY = 60.0  # seconds of clock skew allowed on a token's exp, nbf and iat
OTLP_PROTOCOLS = ("http/protobuf", "grpc")  # the OTLP transports spans and logs can take
