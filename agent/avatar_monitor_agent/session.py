"""`instrument()`: a livekit-agents AgentSession's errors, close, latencies and state, and its
avatar's own word, reported."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard

from livekit import rtc

from avatar_monitor_agent.agent_events import (
    COMPONENT_OF_ERROR,
    LATENCY_OF_METRIC,
    PLAYBACK_METRIC,
    avatar_join_event_id,
    error_event_id,
    playback_event_id,
    turn_event_id,
)
from avatar_monitor_agent.forward import avatar_message
from avatar_monitor_agent.reporter import Reporter
from avatar_monitor_agent.schema import AGENT_STATES, error_message

if TYPE_CHECKING:
    from livekit.agents import AgentSession
    from livekit.agents.voice.events import (
        AgentStateChangedEvent,
        CloseEvent,
        ConversationItemAddedEvent,
        ErrorEvent,
        EventTypes,
        MetricsCollectedEvent,
    )

log = logging.getLogger(__name__)


def instrument(session: AgentSession[Any], room: rtc.Room, **reporter_options: Any) -> Reporter:
    """Report the session's pipeline errors, its close, its per-turn latencies, the
    avatar's playback latency per reply and join time (livekit-agents' AvatarMetrics), the
    agent's state (`agent_state`: speaking while the avatar plays its speech), and forward what
    its avatar says on the avatar's data topics (`avatar_message`, avatar_monitor_agent.forward):
    what the sidecar's room observer would read, so a sidecar without it loses nothing.

    Errors and turns get the ids the sidecar derives from livekit-agents' own `lk.agent.session`
    broadcast of them, and the avatar's messages the id the observer gives its own copy
    (avatar_monitor_agent.agent_events), so they count once whichever path comes first.

    `reporter_options` go to `Reporter` (url, api_key, api_secret, data_channel, ...); the URL
    defaults to $AVATAR_MONITOR_URL and the keys to $LIVEKIT_API_KEY / $LIVEKIT_API_SECRET.
    """
    reporter = Reporter(room, **reporter_options)

    def on_error(ev: ErrorEvent) -> None:
        error_type = getattr(ev.error, "type", "")
        timestamp = getattr(ev.error, "timestamp", None)
        recoverable = getattr(ev.error, "recoverable", False) is True
        event_id = (error_event_id(error_type, timestamp)
                    if error_type and _is_seconds(timestamp) else None)
        # livekit-agents wraps the provider's exception (LLMError.error, TTSError.error, ...)
        cause = getattr(ev.error, "error", None) or ev.error
        reporter.report("pipeline_error", event_id, recoverable=recoverable,
                        component=COMPONENT_OF_ERROR.get(error_type, "other"),
                        message=error_message(cause))

    def on_close(ev: CloseEvent) -> None:
        reason = getattr(ev.reason, "value", str(ev.reason))
        closing_error = getattr(ev, "error", None)
        cause = getattr(closing_error, "error", None) or closing_error
        reporter.report("session_closed", reason=reason, message=error_message(cause))
        for event, handler in handlers.items():
            session.off(event, handler)
        room.off("data_received", on_data)
        reporter.close_soon()

    def on_state(ev: AgentStateChangedEvent) -> None:
        state = ev.new_state if ev.new_state in AGENT_STATES else "other"
        reporter.report("agent_state", state=state,
                        at=ev.created_at if _is_seconds(ev.created_at) else None)

    def on_avatar_said(packet: rtc.DataPacket) -> None:
        said = avatar_message(room, packet)
        if said is not None:
            reporter.report("avatar_message", said.id, **said.fields())

    def on_item(ev: ConversationItemAddedEvent) -> None:
        item_id = getattr(ev.item, "id", "") or ""
        metrics = getattr(ev.item, "metrics", None) or {}
        stages = {stage: metrics[key] for key, stage in LATENCY_OF_METRIC.items()
                  if _is_seconds(metrics.get(key))}
        if stages:
            reporter.report("agent_latency", turn_event_id(item_id) if item_id else None,
                            **stages)
        playback = metrics.get(PLAYBACK_METRIC)
        if getattr(ev.item, "role", "") == "assistant" and _is_seconds(playback):
            reporter.report("agent_latency", playback_event_id(item_id) if item_id else None,
                            avatar_playback=playback)

    def on_metrics(ev: MetricsCollectedEvent) -> None:
        avatar = ev.metrics
        if getattr(avatar, "type", "") != "avatar_metrics":
            return
        started, joined = (getattr(avatar, "session_started_time", None),
                           getattr(avatar, "avatar_joined_time", None))
        if _is_seconds(started) and _is_seconds(joined) and joined >= started:
            reporter.report("agent_latency", avatar_join_event_id(avatar.timestamp),
                            avatar_join=joined - started)

    handlers: dict[EventTypes, Callable[..., None]] = {
        "error": _never_raises(on_error), "close": _never_raises(on_close),
        "conversation_item_added": _never_raises(on_item),
        "metrics_collected": _never_raises(on_metrics),
        "agent_state_changed": _never_raises(on_state)}
    for event, handler in handlers.items():
        session.on(event, handler)
    on_data = _never_raises(on_avatar_said)
    room.on("data_received", on_data)
    return reporter


def _is_seconds(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _never_raises(handler: Any) -> Any:
    def safe(ev: Any) -> None:
        try:
            handler(ev)
        except Exception:
            log.exception("avatar-monitor: reporting %s failed", type(ev).__name__)

    return safe
