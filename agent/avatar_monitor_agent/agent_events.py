"""What livekit-agents and the avatar report, in this project's terms, for both ways it reaches
the sidecar: `instrument()` in the voice agent, and the sidecar's observer reading livekit-agents'
own `lk.agent.session` broadcast (monitor.reports.session_stream) and the avatar's data messages
(monitor.observer.room). Both derive an event's id from the same facts, so the sidecar applies
an event once however many paths bring it."""

from __future__ import annotations

import hashlib

# livekit-agents error `type` (STTError, LLMError, TTSError, RealtimeModelError) -> component
COMPONENT_OF_ERROR = {"stt_error": "stt", "llm_error": "llm", "tts_error": "tts",
                      "realtime_model_error": "realtime"}
# ChatMessage.metrics keys -> agent_latency stages, as both paths carry them
LATENCY_OF_METRIC = {"llm_node_ttft": "llm_ttft", "tts_node_ttfb": "tts_ttfb",
                     "end_of_turn_delay": "end_of_turn", "e2e_latency": "e2e"}
# Only in the agent's process (livekit-agents broadcasts no playback latency): the first audio
# frame sent to the avatar to the avatar's playback start ("Avatar is delayed in speaking").
PLAYBACK_METRIC = "playback_latency"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def error_event_id(error_type: str, timestamp: float) -> str:
    """One livekit-agents error: its type and its own timestamp (repr, as str(error) shows)."""
    return "err-" + _digest(error_type, repr(float(timestamp)))


def turn_event_id(item_id: str) -> str:
    """The latencies of one conversation item."""
    return "turn-" + _digest(item_id)


def playback_event_id(item_id: str) -> str:
    """The avatar's playback latency of one reply (instrument() only)."""
    return "play-" + _digest(item_id)


def avatar_join_event_id(timestamp: float) -> str:
    """livekit-agents' AvatarMetrics for the avatar's join (instrument() only)."""
    return "join-" + _digest(repr(float(timestamp)))


def avatar_message_id(topic: str, identity: str, participant_sid: str, payload: bytes) -> str:
    """One message of the avatar, as the voice agent and the sidecar's observer both receive
    it: its topic, the avatar's identity and participant sid (one stay in one room, so the same
    words in another call, or from a swapped-in avatar, are another message), and its bytes.
    Two byte-identical messages of one avatar on one topic are therefore one message."""
    digest = hashlib.sha256("\x1f".join((topic, identity, participant_sid)).encode()
                            + b"\x1e" + payload).hexdigest()[:32]
    return "avm-" + digest
