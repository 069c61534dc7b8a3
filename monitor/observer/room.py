"""The room observer: a hidden participant in each call's room, for what webhooks cannot see.

It joins hidden and publishes nothing. When the avatar speaks comes from the voice agent's
`lk.agent.state` attribute (livekit-agents sets it to `speaking` while the avatar plays the
agent's speech), which costs no media. Only in rooms whose agent publishes no such state does it
subscribe to the avatar's audio (LiveKit sends active-speaker updates to a track's subscribers
only), which livekit-rtc then receives and decodes. It reports to the call tracker: data messages
(`lemonslice/message`, `avatar-monitor/events`, and the avatar's own `lemonslice`, taken only
from the call's avatar), when the avatar speaks, and the avatar's connection quality. Rooms are
discovered from the tracker (a webhook named them) and from RoomService `list_rooms` at start-up
and periodically, so a restarted sidecar picks up calls in progress. It joins once a user is in
the room, and leaves when the call ends or no user is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from avatar_monitor_agent.participants import kind_name
from avatar_monitor_agent.roles import Role
from livekit import api, rtc

from monitor.calls.listener import CallListener
from monitor.calls.model import Call
from monitor.calls.tracker import CallTracker
from monitor.intake.events import disconnect_reason_name
from monitor.limits import OBSERVE_MAX_ROOMS
from monitor.logs import RateLimitedLog
from monitor.observer.reconcile import in_shard
from monitor.observer.rtc_logging import quiet_ignored_streams
from monitor.observer.rtc_roles import participant_of
from monitor.reports.bridge import BackendBridge
from monitor.reports.session_stream import LABEL as SESSION_LABEL
from monitor.reports.session_stream import TOPIC as SESSION_TOPIC
from monitor.reports.session_stream import decode, event_type, read_bounded
from monitor.reports.signals import parse_message
from monitor.sinks.metrics import SPEECH_SOURCES, Metrics

log = logging.getLogger("monitor.observer")

OBSERVER_IDENTITY_PREFIX = "avatar-monitor-observer"
MAX_SESSION_STREAMS = 16  # lk.agent.session streams read at once per room; more are dropped
AGENT_STATE = "lk.agent.state"
_refusals = RateLimitedLog(log)
_QUALITY_NAMES = {q: q.name.removeprefix("QUALITY_").lower() for q in rtc.ConnectionQuality}


@dataclass(frozen=True, slots=True)
class ObserverSettings:
    url: str
    api_key: str
    api_secret: str
    max_rooms: int = OBSERVE_MAX_ROOMS
    shard: int = 0
    shards: int = 1
    max_backoff: float = 30.0




@dataclass(slots=True)
class _Watch:
    """One observed room."""

    name: str
    sid: str
    room: rtc.Room | None = None
    task: asyncio.Task[None] | None = None
    connected: bool = False
    closing: bool = False
    speech_from_agent: bool = False  # the agent's lk.agent.state, not the avatar's audio
    streams: set[asyncio.Task[None]] = field(default_factory=set)  # lk.agent.session reads


class RoomObserver(CallListener):
    """Watches the rooms of tracked calls; a CallListener so calls start and stop its watches."""

    def __init__(self, settings: ObserverSettings, tracker: CallTracker, metrics: Metrics,
                 bridge: BackendBridge, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._tracker = tracker
        self._metrics = metrics
        self._bridge = bridge
        self._clock = clock
        self._identity = f"{OBSERVER_IDENTITY_PREFIX}-{uuid.uuid4().hex[:8]}"
        self._watches: dict[str, _Watch] = {}
        self._api: api.LiveKitAPI | None = None
        # Connects finishing after a cancel, and closes under way: kept until done.
        self._stragglers: set[asyncio.Future[None]] = set()
        metrics.observer_rooms.set_function(
            lambda: sum(watch.connected for watch in self._watches.values()))
        for source in SPEECH_SOURCES:
            metrics.observer_speech_source.labels(source).set_function(
                functools.partial(self._watching_speech_from, source == "agent_state"))

    # -- lifecycle -------------------------------------------------------------------------

    def _watching_speech_from(self, agent_state: bool) -> int:
        """Rooms watched now whose speech comes from the agent's state (or from audio)."""
        return sum(w.connected and w.speech_from_agent is agent_state
                   for w in self._watches.values())

    async def start(self) -> None:
        s = self.settings
        self._api = api.LiveKitAPI(s.url, s.api_key, s.api_secret)
        quiet_ignored_streams()

    async def stop(self) -> None:
        await asyncio.gather(*(self._close(watch) for watch in list(self._watches.values())))
        if self._stragglers:
            await asyncio.wait(set(self._stragglers), timeout=10)
        if self._api is not None:
            await self._api.aclose()

    # -- call transitions ------------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        self._watch(call.room_name, call.room_sid)

    def call_ended(self, call: Call, at: float) -> None:
        self._unwatch(call.room_sid)

    def call_evicted(self, call: Call) -> None:
        self._unwatch(call.room_sid)

    # -- rooms -----------------------------------------------------------------------------

    def _mine(self, room_name: str) -> bool:
        return in_shard(room_name, self.settings.shard, self.settings.shards)

    # -- watching --------------------------------------------------------------------------

    def _watch(self, name: str, sid: str) -> None:
        if sid in self._watches or not name or not self._mine(name):
            return
        if len(self._watches) >= self.settings.max_rooms:
            self._metrics.observer_skipped.labels("limit").inc()
            return
        watch = _Watch(name, sid)
        self._watches[sid] = watch
        watch.task = asyncio.get_running_loop().create_task(self._keep_watching(watch))

    def _unwatch(self, sid: str) -> None:
        watch = self._watches.get(sid)
        if watch is not None and not watch.closing:
            closing = asyncio.get_running_loop().create_task(self._close(watch))
            self._stragglers.add(closing)
            closing.add_done_callback(self._stragglers.discard)

    async def _close(self, watch: _Watch) -> None:
        watch.closing = True
        self._watches.pop(watch.sid, None)
        if watch.task is not None and watch.task is not asyncio.current_task():
            watch.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch.task
        if watch.room is not None and watch.room.isconnected():
            with contextlib.suppress(Exception):
                await watch.room.disconnect()

    async def _keep_watching(self, watch: _Watch) -> None:
        """Connect, and after each loss reconnect with capped backoff while the room lives."""
        attempt = 0
        while not watch.closing:
            if attempt:
                self._metrics.observer_reconnects.inc()
                delay = min(self.settings.max_backoff, 0.5 * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            # Joining a room that does not exist would create it (a new sid, room_started sent
            # to every webhook consumer): join only the call's own room, as it still is.
            if not await self._room_exists(watch):
                return
            attempt += 1
            lost = asyncio.Event()
            try:
                await self._connect(watch, lost)
            except Exception as exc:
                log.warning("observer could not join room %s: %s", watch.name, exc)
                continue
            if watch.closing:
                return
            attempt = 1
            await lost.wait()

    async def _room_exists(self, watch: _Watch) -> bool:
        """Before joining (which would create the room anew), check that it exists with the
        call's sid."""
        assert self._api is not None
        try:
            listed = await self._api.room.list_rooms(api.ListRoomsRequest(names=[watch.name]))
        except Exception as exc:
            log.warning("cannot check room %s: %s", watch.name, exc)
            return True  # the server may be restarting: keep trying
        if any(room.sid == watch.sid for room in listed.rooms):
            return True
        log.info("room %s is gone; closing its call", watch.name)
        self._gone(watch)
        return False

    def _gone(self, watch: _Watch) -> None:
        self._metrics.observer_skipped.labels("gone").inc()
        self._watches.pop(watch.sid, None)
        watch.closing = True
        self._tracker.room_gone(watch.sid, self._clock())

    async def _connect(self, watch: _Watch, lost: asyncio.Event) -> None:
        room = rtc.Room()
        watch.room = room
        room.on("data_received", lambda packet: self._on_data(watch, packet))
        room.on("active_speakers_changed", lambda speakers: self._on_speakers(watch, speakers))
        room.on("connection_quality_changed",
                lambda participant, quality: self._on_quality(watch, participant, quality))
        room.on("disconnected", lambda reason: self._on_disconnected(watch, reason, lost))
        room.on("track_published",
                lambda publication, participant: self._on_track(watch, publication, participant))
        room.on("participant_attributes_changed",
                lambda changed, participant: self._on_attributes(watch, changed, participant))
        room.on("participant_disconnected", lambda _: self._leave_without_users(watch))
        room.register_byte_stream_handler(
            SESSION_TOPIC, lambda reader, sender: self._on_session_stream(watch, reader, sender))
        connecting = asyncio.ensure_future(room.connect(
            self.settings.url, self._token(watch.name), rtc.RoomOptions(auto_subscribe=False)))
        try:
            # livekit-rtc's connect must not be cancelled half-way: its native side would wait
            # for the cancelled coroutine, then end the whole process (python-sdks issue 784).
            await asyncio.shield(connecting)
        except asyncio.CancelledError:
            self._disconnect_when_connected(connecting, room)
            raise
        joined_sid = await asyncio.wait_for(room.sid, 10)
        if joined_sid != watch.sid:
            # The room closed between the check and the join, which made it anew: leave at once.
            log.warning("room %s has sid %s, not the call's %s; leaving", watch.name,
                        joined_sid, watch.sid)
            await room.disconnect()
            self._gone(watch)
            return
        for participant in room.remote_participants.values():
            self._on_attributes(watch, participant.attributes, participant)
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                self._on_track(watch, publication, participant)
        watch.connected = True
        self._tracker.observing(watch.sid, self._clock())
        self._leave_without_users(watch)
        log.info("observing room %s", watch.name)

    def _disconnect_when_connected(self, connecting: asyncio.Future[None], room: rtc.Room
                                   ) -> None:
        """Let an abandoned connect finish, then leave the room."""
        self._stragglers.add(connecting)

        def leave(done: asyncio.Future[None]) -> None:
            self._stragglers.discard(done)
            if not done.cancelled() and done.exception() is None:
                leaving = asyncio.ensure_future(room.disconnect())
                self._stragglers.add(leaving)
                leaving.add_done_callback(self._stragglers.discard)

        connecting.add_done_callback(leave)

    def _token(self, room_name: str) -> str:
        s = self.settings
        grants = api.VideoGrants(room_join=True, room=room_name, hidden=True, can_publish=False,
                                 can_publish_data=False, can_subscribe=True)
        return (api.AccessToken(s.api_key, s.api_secret).with_identity(self._identity)
                .with_name("avatar-monitor").with_grants(grants).to_jwt())

    # -- room events -----------------------------------------------------------------------

    def _leave_without_users(self, watch: _Watch) -> None:
        """Leave once no user is left: the call is over, and LiveKit closes a room on its agents
        only when no other participant (a hidden observer included) remains."""
        if watch.room is None:
            return
        roles = (self._tracker.role_of(participant_of(p))
                 for p in watch.room.remote_participants.values())
        if Role.USER not in roles:
            self._unwatch(watch.sid)

    def _on_track(self, watch: _Watch, publication: rtc.RemoteTrackPublication,
                  participant: rtc.RemoteParticipant) -> None:
        """Without the agent's state, speech comes from speaker updates, which LiveKit sends
        only to subscribers of the speaker's audio: take the avatar's audio, nothing else."""
        if (not watch.speech_from_agent and publication.kind == rtc.TrackKind.KIND_AUDIO
                and self._is_avatar(participant)):
            publication.set_subscribed(True)

    def _on_attributes(self, watch: _Watch, changed: dict[str, str],
                       participant: rtc.Participant) -> None:
        """The voice agent's state: `speaking` while the avatar plays its speech."""
        state = changed.get(AGENT_STATE)
        if state is None or self._tracker.role_of(participant_of(participant)) \
                is not Role.AGENT:
            return
        if not watch.speech_from_agent:
            watch.speech_from_agent = True
            self._stop_avatar_audio(watch)
        self._tracker.avatar_speaking(watch.sid, state == "speaking", self._clock())

    def _stop_avatar_audio(self, watch: _Watch) -> None:
        """The agent's state makes the avatar's audio unnecessary: stop receiving it."""
        if watch.room is None:
            return
        for participant in watch.room.remote_participants.values():
            if self._is_avatar(participant):
                for publication in participant.track_publications.values():
                    if publication.kind == rtc.TrackKind.KIND_AUDIO:  # asked for, or received
                        publication.set_subscribed(False)

    def _on_data(self, watch: _Watch, packet: rtc.DataPacket) -> None:
        message = parse_message(packet.topic or "", packet.data)
        if message is None:
            return
        sender = packet.participant
        if sender is None or not _is_agent(sender):  # only the voice agent and the avatar report
            self._metrics.data_refused.labels(message.topic, "forbidden").inc()
            _refusals.warning("forbidden", "data message on %s in room %r refused: the sender "
                               "%r is not an agent participant", packet.topic, watch.name,
                               sender.identity if sender else "")
            return
        if message.avatar_only and not self._is_calls_avatar(watch, sender):
            self._metrics.data_refused.labels(message.topic, "not_avatar").inc()
            _refusals.warning("not_avatar", "%s message on %s in room %r refused: the sender "
                              "%r is not the call's avatar", message.type, packet.topic,
                              watch.name, sender.identity)
            return
        self._metrics.data_message(message.topic, message.type)
        if message.event is not None:
            self._bridge.accept("data_channel", message.event, self._clock(), watch.name,
                                watch.sid)

    def _on_session_stream(self, watch: _Watch, reader: rtc.ByteStreamReader,
                           sender: str) -> None:
        """livekit-agents' session broadcast: read each stream (bounded in size and number)
        and take what it reports from the voice agent."""
        if len(watch.streams) >= MAX_SESSION_STREAMS:
            self._metrics.data_message(SESSION_LABEL, "malformed")
            return
        task = asyncio.get_running_loop().create_task(self._read_session(watch, reader, sender))
        watch.streams.add(task)
        task.add_done_callback(watch.streams.discard)

    async def _read_session(self, watch: _Watch, reader: rtc.ByteStreamReader,
                            sender: str) -> None:
        try:
            payload = await read_bounded(reader)
            event = decode(payload) if payload is not None else None
        except Exception as exc:  # a broken stream or bytes that are no session message
            log.debug("unreadable %s stream in room %s: %s", SESSION_TOPIC, watch.name, exc)
            payload = event = None
        # The sender is looked up once the stream is read: an agent's first message can open
        # before the room reports the agent itself.
        participant = watch.room.remote_participants.get(sender) if watch.room else None
        if not _is_agent(participant):
            self._metrics.data_refused.labels(SESSION_LABEL, "forbidden").inc()
            _refusals.warning("forbidden", "%s stream refused: %s is not an agent participant",
                              SESSION_TOPIC, sender)
            return
        if payload is None:
            self._metrics.data_message(SESSION_LABEL, "malformed")
            return
        if event is None:
            self._metrics.data_message(SESSION_LABEL, "other")
            return
        self._metrics.data_message(SESSION_LABEL, event_type(event.signal))
        self._bridge.accept("agent_session", event, self._clock(), watch.name, watch.sid)

    def _on_speakers(self, watch: _Watch, speakers: list[rtc.Participant]) -> None:
        if watch.speech_from_agent:
            return
        speaking = any(self._is_avatar(p) for p in speakers)
        self._tracker.avatar_speaking(watch.sid, speaking, self._clock())

    def _on_quality(self, watch: _Watch, participant: rtc.Participant | None,
                    quality: rtc.ConnectionQuality) -> None:
        if participant is not None and self._is_avatar(participant):
            self._tracker.avatar_quality(watch.sid, _QUALITY_NAMES.get(quality, "unknown"),
                                         self._clock())

    def _on_disconnected(self, watch: _Watch, reason: int, lost: asyncio.Event) -> None:
        watch.connected = False
        label = disconnect_reason_name(reason)
        if not watch.closing:
            self._metrics.observer_disconnects.labels(label).inc()
            log.info("observer left room %s: %s", watch.name, label)
        lost.set()

    def _is_avatar(self, participant: rtc.Participant) -> bool:
        return self._tracker.role_of(participant_of(participant)) is Role.AVATAR

    def _is_calls_avatar(self, watch: _Watch, participant: rtc.Participant) -> bool:
        """An avatar by role and, once the call knows its avatar, that very one."""
        if not self._is_avatar(participant):
            return False
        call = self._tracker.call(watch.sid)
        return call is None or call.avatar_sid in (None, participant.sid)


def _is_agent(sender: rtc.RemoteParticipant | None) -> bool:
    """An AGENT participant of the room (None: sent by a server SDK, not a participant)."""
    return sender is not None and kind_name(sender.kind) == "AGENT"


