"""The avatar's media: its first tracks (their delay from its join), and its media stopping
mid-call ("audio cuts out"): its audio or video unpublished (webhooks, the room observer) or
muted (the room observer only: no webhook says so), or its audio dry: published and unmuted but
silent while the voice agent says it speaks (the room observer's probe,
monitor/observer/dry_audio.py; ended when heard again or the agent's turn ends).

A kind that stays off longer than `TrackerSettings.interruption_grace` while the call is active
is one interruption, counted once; it ends when the kind is published or unmuted again, or when
the avatar leaves or the call ends. livekit-server unpublishes a leaving participant's tracks
just before its leave (measured: track_unpublished, then participant_left, within milliseconds;
the observer sees track_unpublished, then participant_disconnected): the grace covers that.
Times here are this machine's clock; a webhook's whole-second createdAt is narrowed by its
arrival, as for the avatar's leave.
"""

from __future__ import annotations

from monitor.calls.book import CallBook
from monitor.calls.core import CREATED_AT_PRECISION
from monitor.calls.inputs import Event
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState, MediaOff

MEDIA_KINDS = ("audio", "video")
_TRACK_BIT = {"audio": 1, "video": 2}


class MediaApplier:
    """The avatar's tracks from webhooks, and its media interruptions from webhooks and the room
    observer."""

    def __init__(self, book: CallBook) -> None:
        self._book = book

    def avatar_media(self, room_sid: str, avatar_sid: str, kind: str, on: bool, how: str,
                     at: float) -> None:
        """The room observer saw the avatar's `kind` stop (how: unpublished, muted, dry) or
        come back (published, unmuted, heard again), at `at` (this machine's clock)."""
        call = self._book.call(room_sid)
        if call is not None and call.avatar_sid == avatar_sid:
            self._media_changed(call, kind, on, how, at)

    def avatar_disconnected(self, room_sid: str, avatar_sid: str, at: float) -> None:
        """The room observer saw the avatar go: its media off since just before is its leave,
        not an interruption, even if the leave's webhook comes late."""
        call = self._book.call(room_sid)
        if call is None or call.avatar_sid != avatar_sid or call.media_off is None:
            return
        for kind, off in list(call.media_off.items()):
            if not off.counted:
                self._book.end_media(call, kind, off, off.since, restored=False)

    def track_published(self, event: Event, now: float) -> None:
        participant, kind = event.participant, event.track_kind or ""
        if participant is None or kind not in _TRACK_BIT:
            return
        call = self._book.call(event.room_sid)
        if call is None:
            return
        published = event.track_published_at or event.created_at
        waiting = call.next_avatar
        if waiting is not None and waiting.sid == participant.sid:
            waiting.tracks.setdefault(kind, published)  # counted if it takes over
        elif call.avatar_sid == participant.sid:
            self._webhook_media(call, event, kind, True, now)  # back after an interruption?
            self.first_track(call, kind, published)

    def track_unpublished(self, event: Event, now: float) -> None:
        participant, kind = event.participant, event.track_kind or ""
        call = self._book.call(event.room_sid)
        if participant is not None and call is not None and call.avatar_sid == participant.sid:
            self._webhook_media(call, event, kind, False, now)

    def first_track(self, call: Call, kind: str, published: float) -> None:
        """The avatar's session published `kind` (server time): told once per session."""
        bit = _TRACK_BIT[kind]
        if call.tracks_seen & bit:
            return
        call.tracks_seen |= bit
        joined = call.avatar_joined_at or published
        delay = max(published - joined, 0.0)
        self._book.emit(CallListener.first_track, call, kind, delay, joined + delay)

    def check(self, now: float) -> None:
        """Count the interruptions whose grace has passed."""
        for _, sid, kind, since in self._book.media_checks.due(now):
            call = self._book.call(sid)
            if call is None or call.media_off is None or call.avatar_left:
                continue
            off = call.media_off.get(kind)
            if off is not None and off.since == since:
                self._book.count_media(call, kind, off, now)

    def _webhook_media(self, call: Call, event: Event, kind: str, on: bool, now: float) -> None:
        """A track_published (on) or track_unpublished webhook for the avatar's `kind`."""
        at = (event.track_published_at if on else None) or event.created_at
        local = min(max(now, at), at + CREATED_AT_PRECISION)
        self._media_changed(call, kind, on, "unpublished", local)

    def _media_changed(self, call: Call, kind: str, on: bool, how: str, at: float) -> None:
        if kind not in MEDIA_KINDS or call.avatar_left or call.state is CallState.ENDED:
            return
        off = call.media_off.get(kind) if call.media_off is not None else None
        if on:  # a dry track heard again ends only that: not a mute or unpublish
            if off is not None and (how != "dry" or off.how == "dry"):
                self._book.end_media(call, kind, off, at, restored=True)
        elif off is None:  # already off (muted, then unpublished; told twice): the first holds
            if call.media_off is None:
                call.media_off = {}
            call.media_off[kind] = MediaOff(at, how)
            grace_over = at + self._book.settings.interruption_grace
            self._book.media_checks.add((grace_over, call.room_sid, kind, at))
