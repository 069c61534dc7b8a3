"""avatar-monitor's client for a livekit-agents voice agent, and the wire schema both share.

    from avatar_monitor_agent import instrument, wait_for_avatar

    reporter = instrument(session, ctx.room)          # errors, close, latencies, state,
                                                      # and the avatar's word, forwarded
    if not await wait_for_avatar(ctx.room, reporter=reporter):
        return                                        # startup_failure already published

`schema`, `agent_events`, `forward` and `roles` are the facts avatar-monitor itself reads:
topics, event types and closed sets, event ids, the avatar's word, and who the avatar is.
"""

from avatar_monitor_agent.avatar import wait_for_avatar
from avatar_monitor_agent.reporter import Reporter
from avatar_monitor_agent.session import instrument

__all__ = ["Reporter", "instrument", "wait_for_avatar"]
