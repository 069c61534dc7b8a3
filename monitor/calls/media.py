"""The avatar's media stopping mid-call ("audio cuts out"): its audio or video unpublished
(webhooks, the room observer) or muted (the room observer only: no webhook says so), or its
audio dry: published and unmuted but silent while the voice agent says it speaks (the room
observer's probe, monitor/observer/dry_audio.py; ended when heard again or the agent's turn
ends).

A kind that stays off longer than `TrackerSettings.interruption_grace` while the call is active
is one interruption, counted once; it ends when the kind is published or unmuted again, or when
the avatar leaves or the call ends. livekit-server unpublishes a leaving participant's tracks
just before its leave (measured: track_unpublished, then participant_left, within milliseconds;
the observer sees track_unpublished, then participant_disconnected): the grace covers that.
Times here are this machine's clock; a webhook's whole-second createdAt is narrowed by its
arrival, as for the avatar's leave.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from avatar_monitor_agent.roles import RoleClassifier

from monitor.calls.core import CREATED_AT_PRECISION, TrackerCore, TrackerSettings
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState, MediaOff
from monitor.intake.events import Event

MEDIA_KINDS = ("audio", "video")


class MediaCalls(TrackerCore):
    """Media interruptions from webhooks and the room observer."""

    def __init__(self, roles: RoleClassifier, settings: TrackerSettings,
                 listeners: Iterable[CallListener] = ()) -> None:
        super().__init__(roles, settings, listeners)
        # (local time the grace ends, room sid, kind, when it went off): checked by expire.
        self._media_checks: list[tuple[float, str, str, float]] = []

    def avatar_media(self, room_sid: str, avatar_sid: str, kind: str, on: bool, how: str,
                     at: float) -> None:
        """The room observer saw the avatar's `kind` stop (how: unpublished, muted, dry) or
        come back (published, unmuted, heard again), at `at` (this machine's clock)."""
        call = self._calls.get(room_sid)
        if call is not None and call.avatar_sid == avatar_sid:
            self._media_changed(call, kind, on, how, at)

    def avatar_disconnected(self, room_sid: str, avatar_sid: str, at: float) -> None:
        """The room observer saw the avatar go: its media off since just before is its leave,
        not an interruption, even if the leave's webhook comes late."""
        call = self._calls.get(room_sid)
        if call is None or call.avatar_sid != avatar_sid or call.media_off is None:
            return
        for kind, off in list(call.media_off.items()):
            if not off.counted:
                self._end_media(call, kind, off, off.since, restored=False)

    def _track_unpublished(self, event: Event) -> None:
        participant, kind = event.participant, event.track_kind or ""
        call = self._calls.get(event.room_sid)
        if participant is not None and call is not None and call.avatar_sid == participant.sid:
            self._webhook_media(call, event, kind, on=False)

    def _webhook_media(self, call: Call, event: Event, kind: str, on: bool) -> None:
        """A track_published (on) or track_unpublished webhook for the avatar's `kind`."""
        at = (event.track_published_at if on else None) or event.created_at
        local = min(max(self._now, at), at + CREATED_AT_PRECISION)
        self._media_changed(call, kind, on, "unpublished", local)

    def _media_changed(self, call: Call, kind: str, on: bool, how: str, at: float) -> None:
        if kind not in MEDIA_KINDS or call.avatar_left or call.state is CallState.ENDED:
            return
        off = call.media_off.get(kind) if call.media_off is not None else None
        if on:  # a dry track heard again ends only that: not a mute or unpublish
            if off is not None and (how != "dry" or off.how == "dry"):
                self._end_media(call, kind, off, at, restored=True)
        elif off is None:  # already off (muted, then unpublished; told twice): the first holds
            if call.media_off is None:
                call.media_off = {}
            call.media_off[kind] = MediaOff(at, how)
            heapq.heappush(self._media_checks,
                           (at + self.settings.interruption_grace, call.room_sid, kind, at))

    def _check_media(self, now: float) -> None:
        """Count the interruptions whose grace has passed."""
        while self._media_checks and self._media_checks[0][0] <= now:
            _, sid, kind, since = heapq.heappop(self._media_checks)
            call = self._calls.get(sid)
            if call is None or call.media_off is None or call.avatar_left:
                continue
            off = call.media_off.get(kind)
            if off is not None and off.since == since:
                self._count_media(call, kind, off, now)
