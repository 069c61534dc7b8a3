"""`avatar-monitor simulate URL`: signed webhooks (and one voice-agent report) for a few kinds of
avatar call, sent to a running sidecar, so that a team without a LiveKit server at hand (a
laptop, LiveKit Cloud before any webhook is set up) sees every kind of verdict in seconds.

Each call has a room of its own (`sim-<kind>-<random>`), dated minutes in the past so that it is
over (and its join deadline passed) by the time it is sent. The webhooks are made as
livekit-server makes them: a protobuf `WebhookEvent` as JSON, signed with the key pair
(`AccessToken.with_sha256`), which the sidecar must share.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from google.protobuf.json_format import MessageToJson
from livekit import api
from livekit.protocol import models, webhook

AVATAR_IDENTITY = "lemonslice-avatar-agent"
AGENT_IDENTITY = "voice-agent"
R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO


@dataclass(frozen=True, slots=True)
class Timing:
    """How the stories are timed, for a sidecar's thresholds: the defaults suit a sidecar with
    its default join timeout (30 s) and --unattended-after (300 s)."""

    late_join: float = 14.0  # the avatar joins this late: after 10 s, before the join timeout
    unattended: float = 400.0  # the avatar stays this long after the user left
    length: float = 500.0  # the calls start this long before they are sent: all are over

    @property
    def never_joined_leave(self) -> float:
        """When the user gives up on an avatar that never came: past any join timeout here."""
        return min(45.0, self.length - 5)


@dataclass
class SimulatedCall:
    """One room's webhooks (and reports) on the server's clock, from `t0` on."""

    kind: str
    expected: str  # the verdict the sidecar should give
    t0: float
    timing: Timing = Timing()
    name: str = ""
    sid: str = ""
    events: list[webhook.WebhookEvent] = field(default_factory=list)
    reports: list[dict[str, object]] = field(default_factory=list)  # POST /v1/events bodies
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = self.name or f"sim-{self.kind}-{tag}"
        self.sid = f"RM_sim{tag}"
        self.events.append(self._event("room_started", self.t0 - 1))

    def _event(self, name: str, at: float, participant: models.ParticipantInfo | None = None,
               track: models.TrackInfo | None = None) -> webhook.WebhookEvent:
        room = models.Room(sid=self.sid, name=self.name, creation_time=int(self.t0 - 1),
                           creation_time_ms=int((self.t0 - 1) * 1000))
        return webhook.WebhookEvent(event=name, id=f"EV_{uuid.uuid4().hex}", created_at=int(at),
                                    room=room, participant=participant, track=track)

    def person(self, identity: str, at: float,
               kind: models.ParticipantInfo.Kind = models.ParticipantInfo.STANDARD,
               attributes: dict[str, str] | None = None) -> models.ParticipantInfo:
        who = models.ParticipantInfo(
            sid=f"PA_{self.sid[3:]}{next(self._ids)}", identity=identity, kind=kind,
            state=models.ParticipantInfo.ACTIVE, joined_at=int(self.t0 + at),
            joined_at_ms=int((self.t0 + at) * 1000), attributes=attributes or {})
        self.events.append(self._event("participant_joined", self.t0 + at, participant=who))
        return who

    def user(self, at: float = 0.0) -> models.ParticipantInfo:
        return self.person("user", at)

    def agent(self, at: float = 0.0) -> models.ParticipantInfo:
        return self.person(AGENT_IDENTITY, at, models.ParticipantInfo.AGENT)

    def avatar(self, at: float, tracks: bool = True) -> models.ParticipantInfo:
        face = self.person(AVATAR_IDENTITY, at, models.ParticipantInfo.AGENT,
                           {"lk.publish_on_behalf": AGENT_IDENTITY})
        for kind in (AUDIO, VIDEO) if tracks else ():
            track = models.TrackInfo(sid=f"TR_{self.sid[3:]}{next(self._ids)}", type=kind,
                                     version=models.TimedVersion(
                                         unix_micro=int((self.t0 + at + 0.4) * 1e6)))
            self.events.append(self._event("track_published", self.t0 + at + 0.4,
                                           participant=face, track=track))
        return face

    def leave(self, who: models.ParticipantInfo, at: float,
              reason: models.DisconnectReason = R.CLIENT_INITIATED) -> None:
        gone = models.ParticipantInfo()
        gone.CopyFrom(who)
        gone.state = models.ParticipantInfo.DISCONNECTED
        gone.disconnect_reason = reason
        self.events.append(self._event("participant_left", self.t0 + at, participant=gone))

    def report(self, at: float, **doc: object) -> None:
        """A voice agent's report (docs/events.md), sent over POST /v1/events."""
        self.reports.append({"v": 1, "id": uuid.uuid4().hex, "at": self.t0 + at,
                             "room": self.name, "room_sid": self.sid, **doc})


def _hang_up(late: bool) -> Callable[[SimulatedCall], None]:
    """The avatar joins (late, or after 1.5 s); the user hangs up after a minute, and agent and
    avatar follow."""

    def story(c: SimulatedCall) -> None:
        user, agent = c.user(), c.agent()
        face = c.avatar(c.timing.late_join if late else 1.5)
        c.leave(user, 60)
        c.leave(agent, 61)
        c.leave(face, 61)

    return story


def _never_joined(c: SimulatedCall) -> None:
    user, agent = c.user(), c.agent()
    c.leave(user, c.timing.never_joined_leave)  # after the join deadline
    c.leave(agent, c.timing.never_joined_leave + 1)


def _pipeline_error(c: SimulatedCall) -> None:
    user, agent, face = c.user(), c.agent(), c.avatar(1.5)
    c.report(20, type="pipeline_error", component="tts", recoverable=False)
    c.leave(user, 40)
    c.leave(agent, 41)
    c.leave(face, 41)


def _network(c: SimulatedCall) -> None:
    user, agent, face = c.user(), c.agent(), c.avatar(1.5)
    c.leave(face, 50, R.CONNECTION_TIMEOUT)
    c.leave(user, 55)
    c.leave(agent, 56)


def _agent_lost(c: SimulatedCall) -> None:
    user, agent, face = c.user(), c.agent(), c.avatar(1.5)
    c.leave(agent, 50, R.CONNECTION_TIMEOUT)  # the agent's process died 20 s before
    c.leave(face, 52)  # the avatar follows its agent
    c.leave(user, 60)


def _user_network(c: SimulatedCall) -> None:
    user, agent, face = c.user(), c.agent(), c.avatar(1.5)
    c.leave(user, 50, R.CONNECTION_TIMEOUT)
    c.leave(agent, 51)
    c.leave(face, 51)


def _unattended(c: SimulatedCall) -> None:
    user, agent, face = c.user(), c.agent(), c.avatar(1.5)
    c.leave(user, 30)
    c.leave(agent, 31)
    c.leave(face, 30 + c.timing.unattended)  # an avatar left alone (400 s: almost 7 minutes)


# kind -> (the verdict the sidecar gives, the call's story); dated so that every call is over.
SCENARIOS: dict[str, tuple[str, Callable[[SimulatedCall], None]]] = {
    "healthy": ("healthy", _hang_up(late=False)),
    "late-join": ("late_join", _hang_up(late=True)),
    "never-joined": ("avatar_never_joined", _never_joined),
    "pipeline-error": ("pipeline_error", _pipeline_error),
    "network": ("network", _network),
    "agent-lost": ("agent_lost", _agent_lost),
    "user-network": ("user_network", _user_network),
    "unattended": ("unattended", _unattended),
}


def calls(now: float, timing: Timing = Timing()) -> list[SimulatedCall]:
    """One call of each kind, all over by `now`."""
    made = []
    for kind, (expected, story) in SCENARIOS.items():
        call = SimulatedCall(kind, expected, float(int(now - timing.length)), timing)
        story(call)
        made.append(call)
    return made


def _signature(body: bytes, key: str, secret: str) -> str:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).to_jwt()


def _agent_token(room: str, key: str, secret: str) -> str:
    return (api.AccessToken(key, secret).with_kind("agent").with_identity(AGENT_IDENTITY)
            .with_grants(api.VideoGrants(room=room)).to_jwt())


async def send(url: str, key: str, secret: str, timing: Timing = Timing()
               ) -> list[SimulatedCall]:
    """Send every call's webhooks and reports in time order; raises RuntimeError naming the
    first one the sidecar did not take."""
    made = calls(time.time(), timing)
    base = url.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for call in made:
            steps: list[tuple[float, object]] = [(e.created_at, e) for e in call.events]
            steps += [(float(str(r["at"])), r) for r in call.reports]
            for _, step in sorted(steps, key=lambda s: s[0]):
                if isinstance(step, webhook.WebhookEvent):
                    body = MessageToJson(step).encode()
                    headers = {"Authorization": _signature(body, key, secret),
                               "Content-Type": "application/webhook+json"}
                    target = f"{base}/webhook"
                else:
                    body = json.dumps(step).encode()
                    headers = {"Authorization": f"Bearer {_agent_token(call.name, key, secret)}",
                               "Content-Type": "application/json"}
                    target = f"{base}/v1/events"
                async with http.post(target, data=body, headers=headers) as resp:
                    if resp.status >= 300:
                        raise RuntimeError(f"{target} answered {resp.status} for the "
                                           f"{call.kind} call: {(await resp.text())[:200]}")
    return made
