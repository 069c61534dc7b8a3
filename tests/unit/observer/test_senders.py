"""monitor.observer.senders: a sender the observer's room did not hold, resolved from what the
room, the webhooks and a RoomService listing tell, within a bounded wait (no livekit-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from monitor.observer.senders import Resolved, RoomSenders

AT = 1_000.0  # when the packet arrived (unix seconds)


def senders(listing: Callable[[RoomSenders], Coroutine[Any, Any, None]] | None = None
            ) -> RoomSenders:
    async def nobody(_: RoomSenders) -> None:
        return None

    holder: list[RoomSenders] = []
    room = RoomSenders(lambda: AT, lambda: (listing or nobody)(holder[0]), max_remembered=8)
    holder.append(room)
    return room


async def test_an_agent_that_joined_unseen_is_the_sender() -> None:
    room = senders()
    room.joined("user", "STANDARD", None)
    room.joined("voice-agent", "AGENT", AT - 0.5)  # from its webhook
    outcome, who = await room.unattributed({"user"}, AT, timeout=1)
    assert (outcome, who) == (Resolved.AGENT, ["voice-agent"])


async def test_an_agent_that_left_just_before_is_the_sender() -> None:
    room = senders()
    room.joined("user", "STANDARD", None)
    room.joined("voice-agent", "AGENT", None)
    room.left("voice-agent", "AGENT", AT - 0.2)
    assert (await room.unattributed({"user"}, AT, timeout=1))[0] is Resolved.AGENT


async def test_a_user_among_the_candidates_is_refused() -> None:
    room = senders()
    room.joined("voice-agent", "AGENT", AT - 1)
    room.joined("intruder", "STANDARD", AT - 1)
    room.left("intruder", "STANDARD", AT)
    outcome, who = await room.unattributed(set(), AT, timeout=1)
    assert outcome is Resolved.NOT_AGENT and set(who) == {"voice-agent", "intruder"}


async def test_held_long_gone_and_later_participants_are_no_candidates() -> None:
    room = senders()
    room.joined("user", "STANDARD", AT - 60)
    room.joined("old-user", "STANDARD", AT - 60)
    room.left("old-user", "STANDARD", AT - 30)
    room.joined("late-user", "STANDARD", AT + 5)  # joined after the packet arrived
    room.joined("voice-agent", "AGENT", AT - 1)
    assert await room.unattributed({"user"}, AT, timeout=1) == (Resolved.AGENT, ["voice-agent"])


async def test_no_candidate_at_all_is_a_server_sdk_after_the_wait() -> None:
    room = senders()
    room.joined("user", "STANDARD", None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await room.unattributed({"user"}, AT, timeout=0.2) == (Resolved.UNKNOWN, [])
    assert 0.2 <= loop.time() - started < 1


async def test_a_join_learnt_during_the_wait_resolves_at_once() -> None:
    room = senders()
    resolving = asyncio.create_task(room.unattributed(set(), AT, timeout=5))
    await asyncio.sleep(0)  # the resolution is waiting
    room.joined("voice-agent", "AGENT", AT)  # its webhook arrives
    outcome, _ = await asyncio.wait_for(resolving, 1)
    assert outcome is Resolved.AGENT


async def test_the_listing_names_whoever_is_still_in_the_room() -> None:
    async def listing(room: RoomSenders) -> None:
        room.joined("voice-agent", "AGENT", AT - 1)
        room.joined("second-user", "STANDARD", AT - 1)

    room = senders(listing)
    outcome, who = await room.unattributed(set(), AT, timeout=1)
    assert outcome is Resolved.NOT_AGENT and set(who) == {"voice-agent", "second-user"}


async def test_a_stream_sender_by_identity() -> None:
    async def listing(room: RoomSenders) -> None:
        room.joined("listed-agent", "AGENT", AT)

    room = senders(listing)
    room.joined("user", "STANDARD", None)
    room.left("gone-agent", "AGENT", AT - 10)  # gone, but remembered
    assert await room.kind_by_identity("user", lambda _: None, timeout=1) == "STANDARD"
    assert await room.kind_by_identity("gone-agent", lambda _: None, timeout=1) == "AGENT"
    assert await room.kind_by_identity("listed-agent", lambda _: None, timeout=1) == "AGENT"
    assert await room.kind_by_identity("held", lambda _: "AGENT", timeout=0) == "AGENT"
    assert await room.kind_by_identity("nobody", lambda _: None, timeout=0.1) is None


async def test_memory_is_bounded_and_a_rejoin_replaces_a_leave() -> None:
    room = senders()
    for n in range(20):
        room.joined(f"p{n}", "STANDARD", AT)
    assert room.kind_of("p0") is None and room.kind_of("p19") == "STANDARD"
    others = {f"p{n}" for n in range(19)}
    room.left("p19", "STANDARD", AT - 100)
    assert await room.unattributed(others, AT, timeout=0) == (Resolved.UNKNOWN, [])
    room.joined("p19", "AGENT", AT - 1)
    assert await room.unattributed(others, AT, timeout=0) == (Resolved.AGENT, ["p19"])
