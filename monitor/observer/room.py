"""The room observer: a hidden participant in each call's room, for what webhooks cannot see.

It joins hidden and publishes nothing. When the avatar speaks comes from the voice agent's
`lk.agent.state` attribute (livekit-agents sets it to `speaking` while the avatar plays the
agent's speech), which costs no media. Only in rooms whose agent publishes no such state does it
subscribe to the avatar's audio (LiveKit sends active-speaker updates to a track's subscribers
only), which livekit-rtc then receives and decodes; with `--observe-media none`
(ObserverSettings.receive_audio False) it subscribes to no track at all. It reports to the call
tracker: data messages (`lemonslice/message`, `avatar-monitor/events`, and the avatar's own
`lemonslice`, taken only from the call's avatar), when the avatar speaks, and the avatar's
connection quality. Only the room's AGENT participants (the voice agent and the avatar) may
report; a message or stream whose sender livekit-rtc does not hold yet (or any more) is resolved
by monitor.observer.senders before it is taken or refused. Rooms are discovered from the tracker
(a webhook named them) and from RoomService `list_rooms` at start-up and periodically, so a
restarted sidecar picks up calls in progress. It joins once a user is in the room, and leaves
when the call ends or no user is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from avatar_monitor_agent.agent_events import avatar_message_id
from avatar_monitor_agent.roles import Role
from livekit import api, rtc

from monitor.calls.inputs import Participant
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState
from monitor.calls.participants import from_rtc, kind_name, rtc_kind_name
from monitor.calls.tracker import CallTracker
from monitor.intake.events import disconnect_reason_name
from monitor.limits import OBSERVE_MAX_ROOMS
from monitor.logs import RateLimitedLog
from monitor.observer.counts import ObserverCounts
from monitor.observer.dry_audio import DryAudioProbe
from monitor.observer.rtc_logging import quiet_ignored_streams
from monitor.observer.senders import AGENT, Resolved, RoomSenders
from monitor.reports.bridge import BackendBridge
from monitor.reports.session_stream import LABEL as SESSION_LABEL
from monitor.reports.session_stream import TOPIC as SESSION_TOPIC
from monitor.reports.session_stream import decode, event_type, read_bounded
from monitor.reports.signals import ParsedMessage, parse_message
from monitor.shard import in_shard

log = logging.getLogger(__name__)

OBSERVER_IDENTITY_PREFIX = "avatar-monitor-observer"
MAX_SESSION_STREAMS = 16  # lk.agent.session streams read at once per room; more are dropped
# Data messages per room waiting for their sender to be resolved; more are refused (dropped).
MAX_UNATTRIBUTED = 16
AGENT_STATE = "lk.agent.state"
_refusals = RateLimitedLog(log)
_QUALITY_NAMES = {q: q.name.removeprefix("QUALITY_").lower() for q in rtc.ConnectionQuality}
_MEDIA_KINDS = {rtc.TrackKind.KIND_AUDIO: "audio", rtc.TrackKind.KIND_VIDEO: "video"}
# How the observer joins: it subscribes to tracks itself (see _watch_media). ICE candidates are
# gathered once, not continually: a server's interfaces do not change as a phone's do, and
# continual gathering kept about 40 sockets (and their buffers, 0.7 MiB) per room open;
# an ICE restart after a lost connection gathers afresh (benchmarks/README.md).
ROOM_OPTIONS = rtc.RoomOptions(
    auto_subscribe=False,
    rtc_config=rtc.RtcConfiguration(
        continual_gathering_policy=rtc.ContinualGatheringPolicy.GATHER_ONCE))


def observer_token(api_key: str, api_secret: str, identity: str, room_name: str) -> str:
    """How the observer joins one room: hidden, subscribing, publishing nothing."""
    grants = api.VideoGrants(room_join=True, room=room_name, hidden=True, can_publish=False,
                             can_publish_data=False, can_subscribe=True)
    return (api.AccessToken(api_key, api_secret).with_identity(identity)
            .with_name("avatar-monitor").with_grants(grants).to_jwt())


@dataclass(frozen=True, slots=True)
class ObserverSettings:
    url: str
    api_key: str
    api_secret: str
    max_rooms: int = OBSERVE_MAX_ROOMS
    shard: int = 0
    shards: int = 1
    max_backoff: float = 30.0
    # False (--observe-media none): subscribe to no track at all; speech only from the agent's
    # lk.agent.state, no dry-audio probe.
    receive_audio: bool = True




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
    # Data messages with no sender livekit-rtc could name, waiting for it to be resolved.
    unattributed: set[asyncio.Task[None]] = field(default_factory=set)
    senders: RoomSenders | None = None  # participants seen in the room, for those
    dry: DryAudioProbe | None = None  # probes of the avatar's audio while the agent speaks


class RoomObserver(CallListener):
    """Watches the rooms of tracked calls; a CallListener so calls start and stop its watches."""

    def __init__(self, settings: ObserverSettings, tracker: CallTracker, metrics: ObserverCounts,
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

    # -- lifecycle -------------------------------------------------------------------------

    def connected_rooms(self) -> int:
        """Rooms the observer is connected to now."""
        return sum(watch.connected for watch in self._watches.values())

    def rooms_with_speech_from(self, source: str) -> int:
        """Rooms watched now whose speech comes from the agent's state (source agent_state)
        or from the avatar's audio (audio; none without audio received)."""
        agent_state = source == "agent_state"
        if not (agent_state or self.settings.receive_audio):
            return 0
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

    def participant_joined(self, call: Call, role: Role, participant: Participant,
                           at: float) -> None:
        """A webhook's join: who may send in the room before the room itself says so."""
        watch = self._watches.get(call.room_sid)
        if watch is not None and watch.senders is not None and not participant.hidden:
            watch.senders.joined(participant.identity, participant.kind,
                                 participant.joined_at or at)

    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None:
        watch = self._watches.get(call.room_sid) if call is not None else None
        if watch is not None and watch.senders is not None and not participant.hidden:
            watch.senders.left(participant.identity, participant.kind, at)

    # -- rooms -----------------------------------------------------------------------------

    def _mine(self, room_name: str) -> bool:
        return in_shard(room_name, self.settings.shard, self.settings.shards)

    # -- watching --------------------------------------------------------------------------

    def _watch(self, name: str, sid: str) -> None:
        if sid in self._watches or not name or not self._mine(name):
            return
        if len(self._watches) >= self.settings.max_rooms:
            self._metrics.observer_skipped("limit")
            return
        watch = _Watch(name, sid)
        watch.senders = RoomSenders(self._clock, functools.partial(self._list_senders, watch))
        if self.settings.receive_audio:
            watch.dry = DryAudioProbe(
                self._clock, functools.partial(self._avatar_audio, watch),
                functools.partial(self._dry_audio, watch),
                self._metrics.audio_probe)
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
        if watch.dry is not None:
            watch.dry.close()
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
                self._metrics.observer_reconnected()
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
        self._metrics.observer_skipped("gone")
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
        room.on("participant_connected",
                lambda participant: self._on_connected(watch, participant))
        room.on("participant_disconnected",
                lambda participant: self._on_left(watch, participant))
        self._watch_media(watch, room)
        room.register_byte_stream_handler(
            SESSION_TOPIC, lambda reader, sender: self._on_session_stream(watch, reader, sender))
        connecting = asyncio.ensure_future(room.connect(
            self.settings.url, self._token(watch.name), ROOM_OPTIONS))
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
            self._on_joined(watch, participant)
            self._on_attributes(watch, participant.attributes, participant)
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                self._on_track(watch, publication, participant)
                self._on_media(watch, participant, publication, not publication.muted, "muted")
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
        return observer_token(s.api_key, s.api_secret, self._identity, room_name)

    # -- room events -----------------------------------------------------------------------

    def _on_connected(self, watch: _Watch, participant: rtc.RemoteParticipant) -> None:
        """A participant joined the room. It may come with the agent's state set already: no
        attribute change then follows to tell it."""
        self._on_joined(watch, participant)
        self._on_attributes(watch, participant.attributes, participant)

    def _on_joined(self, watch: _Watch, participant: rtc.RemoteParticipant) -> None:
        if watch.senders is not None:
            watch.senders.joined(participant.identity, rtc_kind_name(participant.kind), None)

    def _on_left(self, watch: _Watch, participant: rtc.RemoteParticipant) -> None:
        if watch.senders is not None:
            watch.senders.left(participant.identity, rtc_kind_name(participant.kind),
                               self._clock())
        self._leave_without_users(watch)

    async def _list_senders(self, watch: _Watch) -> None:
        """Tell the room's senders who RoomService lists in the room now."""
        assert self._api is not None and watch.senders is not None
        try:
            listed = await self._api.room.list_participants(
                api.ListParticipantsRequest(room=watch.name))
        except Exception as exc:
            log.debug("cannot list the participants of room %s: %s", watch.name, exc)
            return
        for info in listed.participants:
            if info.permission.hidden or info.identity.startswith(OBSERVER_IDENTITY_PREFIX):
                continue
            kind = kind_name(info.kind)
            joined_at = info.joined_at_ms / 1000 if info.joined_at_ms else info.joined_at
            watch.senders.joined(info.identity, kind, joined_at or None)

    def _leave_without_users(self, watch: _Watch) -> None:
        """Leave once no user is left: the call is over, and LiveKit closes a room on its agents
        only when no other participant (a hidden observer included) remains."""
        if watch.room is None:
            return
        roles = (self._tracker.role_of(from_rtc(p))
                 for p in watch.room.remote_participants.values())
        if Role.USER not in roles:
            self._unwatch(watch.sid)

    def _on_track(self, watch: _Watch, publication: rtc.RemoteTrackPublication,
                  participant: rtc.RemoteParticipant) -> None:
        """Without the agent's state, speech comes from speaker updates, which LiveKit sends
        only to subscribers of the speaker's audio: take the avatar's audio, nothing else
        (unless told to receive no media at all)."""
        if (self.settings.receive_audio and not watch.speech_from_agent
                and publication.kind == rtc.TrackKind.KIND_AUDIO
                and self._is_avatar(participant)):
            publication.set_subscribed(True)

    def _on_attributes(self, watch: _Watch, changed: dict[str, str],
                       participant: rtc.Participant) -> None:
        """The voice agent's state: `speaking` while the avatar plays its speech."""
        state = changed.get(AGENT_STATE)
        if state is None or self._tracker.role_of(from_rtc(participant)) \
                is not Role.AGENT:
            return
        if not watch.speech_from_agent:
            watch.speech_from_agent = True
            self._stop_avatar_audio(watch)
        self._tracker.avatar_speaking(watch.sid, state == "speaking", self._clock())
        if watch.dry is not None:
            watch.dry.speaking(state == "speaking")

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
        if sender is None and watch.room is not None:
            # No sender: a server SDK's, or a participant the room does not hold (see
            # monitor.observer.senders; an avatar that says bot_ready right after joining is
            # one). Resolved off the event loop's critical path.
            self._resolve_sender(watch, message, set(watch.room.remote_participants))
            return
        if sender is None or not _is_agent(sender):  # only the voice agent and the avatar report
            name = sender.identity if sender else ""
            self._refuse(watch, message, f"the sender {name!r} is not an agent participant")
            return
        if message.avatar_only and not self._is_calls_avatar(watch, sender):
            self._metrics.data_refused(message.topic, "not_avatar")
            _refusals.warning("not_avatar", "%s message on %s in room %r refused: the sender "
                              "%r is not the call's avatar", message.type, packet.topic,
                              watch.name, sender.identity)
            return
        if message.avatar_only and message.event is not None:
            # The id the voice agent's instrument() gives its forwarded copy: counted once.
            message = dataclasses.replace(message, event=dataclasses.replace(
                message.event, id=avatar_message_id(packet.topic or "", sender.identity,
                                                    sender.sid, packet.data)))
        self._take(watch, message)

    def _resolve_sender(self, watch: _Watch, message: ParsedMessage, held: set[str]) -> None:
        if len(watch.unattributed) >= MAX_UNATTRIBUTED or watch.senders is None:
            self._metrics.late_sender(Resolved.DROPPED.value)
            self._refuse(watch, message, f"no sender, and {MAX_UNATTRIBUTED} messages already "
                         "wait for theirs")
            return
        task = asyncio.get_running_loop().create_task(
            self._take_if_from_agent(watch, watch.senders, message, held, self._clock()))
        watch.unattributed.add(task)
        task.add_done_callback(watch.unattributed.discard)
        # Kept until done, past the watch: a message sent just before the call ended counts.
        self._stragglers.add(task)
        task.add_done_callback(self._stragglers.discard)

    async def _take_if_from_agent(self, watch: _Watch, senders: RoomSenders, message: ParsedMessage,
                                  held: set[str], at: float) -> None:
        outcome, candidates = await senders.unattributed(held, at)
        self._metrics.late_sender(outcome.value)
        if outcome is Resolved.AGENT and message.avatar_only \
                and not self._avatar_among(watch, candidates):
            self._metrics.data_refused(message.topic, "not_avatar")
            _refusals.warning("not_avatar", "%s message on %s in room %r refused: no sender "
                              "named, and the call's avatar is not among those who could have "
                              "sent it (%s)", message.type, message.topic, watch.name,
                              ", ".join(map(repr, candidates)))
        elif outcome is Resolved.AGENT:
            log.info("data message on %s in room %r with no sender named: taken, from %s",
                     message.topic, watch.name, ", ".join(map(repr, candidates)))
            self._take(watch, message)
        elif outcome is Resolved.NOT_AGENT:
            self._refuse(watch, message, "no sender named, and not every participant who could "
                         f"have sent it is an agent ({', '.join(map(repr, candidates))})")
        else:
            self._refuse(watch, message, "no sender: not a participant's (a server SDK's)")

    def _avatar_among(self, watch: _Watch, identities: list[str]) -> bool:
        """Whether the call's avatar (or the one taking over) is one of these identities."""
        call = self._tracker.call(watch.sid)
        if call is None:
            return False
        avatars = {call.avatar_identity}
        if call.next_avatar is not None:
            avatars.add(call.next_avatar.identity)
        return any(identity in avatars for identity in identities)

    def _refuse(self, watch: _Watch, message: ParsedMessage, why: str) -> None:
        self._metrics.data_refused(message.topic, "forbidden")
        _refusals.warning("forbidden", "data message on %s in room %r refused: %s",
                          message.topic, watch.name, why)

    def _take(self, watch: _Watch, message: ParsedMessage) -> None:
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
        # The stream names its sender, but an agent's first stream can open before the room
        # holds the agent (monitor.observer.senders): then the sender is resolved by identity.
        room = watch.room

        def held(identity: str) -> str | None:
            participant = room.remote_participants.get(identity) if room else None
            return rtc_kind_name(participant.kind) if participant is not None else None

        kind = held(sender)
        if kind is None and sender and watch.senders is not None:
            kind = await watch.senders.kind_by_identity(sender, held)
            outcome = (Resolved.UNKNOWN if kind is None
                       else Resolved.AGENT if kind == AGENT else Resolved.NOT_AGENT)
            self._metrics.late_sender(outcome.value)
            if kind == AGENT:
                log.info("%s stream in room %r from %r, whom the room did not hold yet: taken",
                         SESSION_TOPIC, watch.name, sender)
        if kind != AGENT:
            self._metrics.data_refused(SESSION_LABEL, "forbidden")
            _refusals.warning("forbidden", "%s stream refused: %r is not an agent participant "
                              "(%s)", SESSION_TOPIC, sender, kind or "not in the room")
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
        if watch.dry is not None:
            watch.dry.track_gone()
        label = disconnect_reason_name(reason)
        if not watch.closing:
            self._metrics.observer_disconnected(label)
            log.info("observer left room %s: %s", watch.name, label)
        lost.set()

    def _is_avatar(self, participant: rtc.Participant) -> bool:
        return self._tracker.role_of(from_rtc(participant)) is Role.AVATAR

    # -- the avatar's media (monitor/calls/media.py) -------------------------------------

    def _watch_media(self, watch: _Watch, room: rtc.Room) -> None:
        """The avatar's tracks unpublished, muted and back: interruptions of its media."""
        room.on("track_published", lambda publication, participant: self._on_media(
            watch, participant, publication, not publication.muted, "muted"))
        room.on("track_unpublished", lambda publication, participant: self._on_media(
            watch, participant, publication, False, "unpublished"))
        room.on("track_muted", lambda participant, publication: self._on_media(
            watch, participant, publication, False, "muted"))
        room.on("track_unmuted", lambda participant, publication: self._on_media(
            watch, participant, publication, True, "muted"))
        room.on("participant_disconnected", lambda participant: self._on_avatar_gone(
            watch, participant))

    def _on_media(self, watch: _Watch, participant: rtc.Participant,
                  publication: rtc.TrackPublication, on: bool, how: str) -> None:
        kind = _MEDIA_KINDS.get(publication.kind)
        if kind is not None and self._is_avatar(participant):
            self._tracker.avatar_media(watch.sid, participant.sid, kind, on, how, self._clock())
            if kind == "audio" and not on and watch.dry is not None:
                watch.dry.track_gone()

    def _on_avatar_gone(self, watch: _Watch, participant: rtc.RemoteParticipant) -> None:
        if self._is_avatar(participant):
            if watch.dry is not None:
                watch.dry.track_gone()
            self._tracker.avatar_disconnected(watch.sid, participant.sid, self._clock())

    def _avatar_audio(self, watch: _Watch) -> tuple[rtc.RemoteTrackPublication, str] | None:
        """The call's avatar's audio, when it may be probed for a dry track: the call active,
        the track published and unmuted (else it is off already)."""
        call = self._tracker.call(watch.sid)
        if (watch.room is None or call is None or call.state is not CallState.ACTIVE
                or call.avatar_sid is None or (call.media_off and "audio" in call.media_off)):
            return None
        for participant in watch.room.remote_participants.values():
            if participant.sid == call.avatar_sid:
                for publication in participant.track_publications.values():
                    if publication.kind == rtc.TrackKind.KIND_AUDIO and not publication.muted:
                        return publication, participant.sid
        return None

    def _dry_audio(self, watch: _Watch, avatar_sid: str, on: bool, at: float) -> None:
        """A probe found the avatar's audio dry (on False) or sounding again."""
        self._tracker.avatar_media(watch.sid, avatar_sid, "audio", on, "dry", at)

    def _is_calls_avatar(self, watch: _Watch, participant: rtc.Participant) -> bool:
        """An avatar by role and, once the call knows its avatar, that very one."""
        if not self._is_avatar(participant):
            return False
        call = self._tracker.call(watch.sid)
        if call is None or call.avatar_sid in (None, participant.sid):
            return True
        return call.next_avatar is not None and call.next_avatar.sid == participant.sid


def _is_agent(sender: rtc.RemoteParticipant | None) -> bool:
    """An AGENT participant of the room (None: sent by a server SDK, not a participant)."""
    return sender is not None and rtc_kind_name(sender.kind) == "AGENT"


