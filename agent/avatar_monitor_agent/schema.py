"""The wire schema between a voice agent and avatar-monitor (docs/events.md): the data topics, the
`avatar-monitor/events` schema's version, its event types and the closed sets of their fields.

avatar-monitor reads these names from here, so the voice agent and the sidecar cannot disagree on
them; it validates what arrives (anything outside a closed set counts as `other`).
"""

from __future__ import annotations

# The avatar backend's own messages: `{"type": "startup_failure", "message": ...}`, which the
# frontend also reads.
LEMONSLICE_TOPIC = "lemonslice/message"
LEMONSLICE_TYPES = ("startup_failure",)
# This project's versioned events, on the data channel and in `POST /v1/events`.
EVENTS_TOPIC = "avatar-monitor/events"
EVENTS_SCHEMA_VERSION = 1
EVENT_TYPES = ("pipeline_error", "session_closed", "startup_failure", "agent_latency")
# How long after the call's start the avatar has to join: wait_for_avatar's default, and the
# sidecar's join deadline (--avatar-join-timeout).
AVATAR_JOIN_TIMEOUT = 30.0
# livekit-agents' own session broadcast, a byte stream (protobuf AgentSessionMessage).
SESSION_TOPIC = "lk.agent.session"

# pipeline_error `component`
COMPONENTS = ("stt", "llm", "tts", "realtime", "other")
# session_closed `reason`: livekit-agents' CloseReason values, and other
CLOSE_REASONS = ("error", "job_shutdown", "participant_disconnected", "user_initiated",
                 "task_completed", "other")
# agent_latency stages, named after livekit-agents' per-turn ChatMessage.metrics; then the
# avatar's: its playback latency per reply (first audio frame sent to it -> playback started)
# and its join time (AvatarSession.start -> the avatar's video published; AvatarMetrics).
LATENCY_STAGES = ("llm_ttft", "tts_ttfb", "end_of_turn", "e2e", "avatar_playback", "avatar_join")
