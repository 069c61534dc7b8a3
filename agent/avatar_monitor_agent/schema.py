"""The wire schema between a voice agent and avatar-monitor (docs/events.md): the data topics, the
`avatar-monitor/events` schema's version, its event types and the closed sets of their fields.

avatar-monitor reads these names from here, so the voice agent and the sidecar cannot disagree on
them; it validates what arrives (anything outside a closed set counts as `other`).
"""

from __future__ import annotations

# The avatar backend's own messages: `{"type": "startup_failure", "message": ...}`, which the
# frontend also reads (the voice agent sends it), and the avatar's `bot_ready`.
LEMONSLICE_TOPIC = "lemonslice/message"
LEMONSLICE_TYPES = ("startup_failure", "bot_ready")
# The LemonSlice avatar's own messages ("LemonSlice RPC topic" in LemonSlice's examples), sent by
# the avatar participant itself: ready, idle timeout, errors, per-reply video latencies.
AVATAR_TOPIC = "lemonslice"
AVATAR_TYPES = ("bot_ready", "idle_timeout", "error", "video_generation_error", "metric")
# This project's versioned events, on the data channel and in `POST /v1/events`.
EVENTS_TOPIC = "avatar-monitor/events"
EVENTS_SCHEMA_VERSION = 1
EVENT_TYPES = ("pipeline_error", "session_closed", "startup_failure", "agent_latency",
               "avatar_message", "agent_state")
# avatar_message: the voice agent forwards what its avatar said on these topics (all of AVATAR_TYPES
# on AVATAR_TOPIC, `bot_ready` on LEMONSLICE_TOPIC), the avatar's JSON object as it came, if its
# payload is at most this many bytes (even fully escaped, the document stays under 64 KiB).
AVATAR_MESSAGE_TOPICS = (AVATAR_TOPIC, LEMONSLICE_TOPIC)
MAX_AVATAR_MESSAGE_BYTES = 8 * 1024
# agent_state `state`: livekit-agents' AgentState (`speaking` while the avatar plays the agent's
# speech, as its `lk.agent.state` attribute says), and other
AGENT_STATES = ("initializing", "idle", "listening", "thinking", "speaking", "other")
# pipeline_error and session_closed `message`: the error's own words (its class and text, e.g.
# "RuntimeError: TTS provider: 401"), cut to this many characters; for people, never a label.
MAX_ERROR_MESSAGE_CHARS = 500


def error_message(error: object) -> str:
    """An exception's class and text, cut to MAX_ERROR_MESSAGE_CHARS ("" for none)."""
    if error is None:
        return ""
    text = str(error)
    words = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return words[:MAX_ERROR_MESSAGE_CHARS]
# How long after the call's start the avatar has to join: wait_for_avatar's default, and the
# sidecar's join deadline (--avatar-join-timeout).
AVATAR_JOIN_TIMEOUT = 30.0
# livekit-agents' own session broadcast, a byte stream (protobuf AgentSessionMessage).
SESSION_TOPIC = "lk.agent.session"

# pipeline_error `component`; `avatar`: the avatar's own `error` and `video_generation_error`
COMPONENTS = ("stt", "llm", "tts", "realtime", "avatar", "other")
# session_closed `reason`: livekit-agents' CloseReason values, and other
CLOSE_REASONS = ("error", "job_shutdown", "participant_disconnected", "user_initiated",
                 "task_completed", "other")
# agent_latency stages, named after livekit-agents' per-turn ChatMessage.metrics; then the
# avatar's: its playback latency per reply (first audio frame sent to it -> playback started)
# and its join time (AvatarSession.start -> the avatar's video published; AvatarMetrics).
LATENCY_STAGES = ("llm_ttft", "tts_ttfb", "end_of_turn", "e2e", "avatar_playback", "avatar_join")
# The avatar's own `metric` message (topic lemonslice): its field -> the latency stage it gives.
AVATAR_STAGES = {"time_to_first_push": "avatar_first_push",
                 "time_to_last_push": "avatar_last_push"}
