"""Every verdict rule, driven by signed webhooks (and observer or voice-agent signals), read back
through GET /v1/calls/{room}; then the API's authentication, filters and bad input."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from livekit.protocol import models

from monitor.calls.core import LATE_JOIN_GRACE
from monitor.calls.departures import AGENT_HANGUP_WINDOW
from monitor.calls.inputs import (
    AvatarError,
    AvatarIdleTimeout,
    PipelineError,
    StartupFailureMessage,
)
from monitor.diagnosis.page import STYLE
from monitor.diagnosis.verdicts import RULES
from monitor.reports.signals import ReportedEvent
from monitor.sinks.records import MAX_ENTRIES, CallRecords, utc_clock
from monitor.web.access import SESSION_COOKIE
from monitor.web.server import style_hash
from tests.support.calls import Call, abandoned, get, healthy, in_progress, network
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, access_token, agent, avatar, encode, sign, user

R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO


Scenario = Callable[[Call], Awaitable[None]]


async def startup_failure_message(c: Call) -> None:
    await c.start(avatar_after=None)
    c.report(StartupFailureMessage("Avatar failed to become active"), c.t + 3)


async def avatar_never_joined(c: Call) -> None:
    await c.start(avatar_after=None)  # 100 s ago, with a 30 s join timeout
    # A join this late waits LATE_JOIN_GRACE for the webhooks behind it.
    c.sidecar.monitor.tracker.expire(time.time() + LATE_JOIN_GRACE)


async def pipeline_error(c: Call) -> None:
    await c.start()
    c.report(PipelineError("tts", False), c.t + 40)
    await c.avatar_leaves(c.t + 42)


async def idle_timeout(c: Call) -> None:
    await c.start()
    c.observe(speech=(c.t + 3, c.t + 10))
    await c.avatar_leaves(c.t + 70)


async def session_timeout(c: Call) -> None:
    c.t -= 1800
    c.room, c.caller = Room(created_at=c.t - 1), user(c.t)
    await c.start()
    await c.avatar_leaves(c.t + 2 + 1800)


async def repeated_length(c: Call) -> None:
    """Three other avatars dropped 20 min into their sessions; this one does too."""
    c.t -= 1200
    c.room, c.caller = Room(created_at=c.t - 1), user(c.t)
    for i in range(3):
        other = Call(c.sidecar, c.t - 10 * (i + 1))
        await other.start()
        await other.avatar_leaves(other.t + 2 + 1200 + i, R.SIGNAL_CLOSE)
    await c.start()
    await c.avatar_leaves(c.t + 2 + 1200, R.SIGNAL_CLOSE)


async def removed(c: Call) -> None:
    await c.start()
    await c.avatar_leaves(c.t + 50, R.PARTICIPANT_REMOVED)
    # The removal waits for the voice agent's end (an agent hang-up); none comes in the window.
    c.sidecar.monitor.tracker.expire(time.time() + AGENT_HANGUP_WINDOW)


async def server(c: Call) -> None:
    await c.start()
    await c.avatar_leaves(c.t + 50, R.ROOM_DELETED)
    await c.send(c.room.finished(c.t + 50, models.RoomEndReason.ROOM_END_SERVER_SHUTDOWN))


async def agent_hangup(c: Call) -> None:
    """The voice agent ends the call (EndCallTool without deleting the room): it leaves, and its
    avatar follows it out; the user is still there."""
    voice = agent(c.t)
    await c.send(c.room.joined(voice))
    await c.start()
    c.observe(speech=(c.t + 3, c.t + 30))
    await c.send(c.room.left(voice, c.t + 40))
    await c.avatar_leaves(c.t + 40.5)


async def agent_lost(c: Call) -> None:
    """The voice agent's process dies: livekit-server drops it with CONNECTION_TIMEOUT, and its
    avatar (whose runner leaves with its agent) follows it out 2 s later; the user stays."""
    voice = agent(c.t)
    await c.send(c.room.joined(voice))
    await c.start()
    await c.send(c.room.left(voice, c.t + 40, R.CONNECTION_TIMEOUT))
    await c.avatar_leaves(c.t + 42)


async def agent_lost_before_hangup(c: Call) -> None:
    """The agent dies at t+20; the user gives up on the frozen avatar 10 s later, before
    livekit-server declares the agent gone (t+40); the avatar follows its agent."""
    voice = agent(c.t)
    await c.send(c.room.joined(voice))
    await c.start()
    await c.send(c.room.left(c.caller, c.t + 30))
    await c.send(c.room.left(voice, c.t + 40, R.CONNECTION_TIMEOUT))
    await c.avatar_leaves(c.t + 42)


async def network_before_hangup(c: Call) -> None:
    """The avatar dies at t+20; the user hangs up 10 s later; the avatar's CONNECTION_TIMEOUT
    comes at t+40."""
    await c.start()
    await c.send(c.room.left(c.caller, c.t + 30))
    await c.avatar_leaves(c.t + 40, R.CONNECTION_TIMEOUT)


async def user_network(c: Call) -> None:
    """The user's network goes: CONNECTION_TIMEOUT, then the avatar leaves with the call."""
    await c.start()
    await c.send(c.room.left(c.caller, c.t + 40, R.CONNECTION_TIMEOUT))
    await c.avatar_leaves(c.t + 41)


async def black_screen(c: Call) -> None:
    await c.start(tracks=(AUDIO,))


async def never_ready(c: Call) -> None:
    """A LemonSlice avatar, watched from its join, publishes media but never says bot_ready."""
    await c.start()
    c.observe(speech=(c.t + 3, c.t + 10), ready=None)
    await c.user_hangs_up(c.t + 15.5)


async def no_audio(c: Call) -> None:
    await c.start(tracks=(VIDEO,))


async def avatar_left(c: Call) -> None:
    await c.start()
    await c.avatar_leaves(c.t + 50, R.CLIENT_INITIATED)


async def late_join(c: Call) -> None:
    await c.start(avatar_after=12)
    await c.user_hangs_up(c.t + 60)


async def slow_to_speak(c: Call) -> None:
    await c.start()
    c.observe(speech=(c.t + 2 + 8, c.t + 30))
    await c.user_hangs_up(c.t + 40)


async def avatar_rejoined(c: Call) -> None:
    """The avatar's connection fails and it rejoins: DUPLICATE_IDENTITY, one call."""
    await c.start()
    await c.avatar_leaves(c.t + 20, R.DUPLICATE_IDENTITY)
    c.face = avatar(c.t + 20)
    await c.send(c.room.joined(c.face))
    for kind in (AUDIO, VIDEO):
        await c.send(c.room.track(c.face, kind, c.t + 20.5))
    await c.user_hangs_up(c.t + 60)


async def unattended(c: Call) -> None:
    """The user hangs up; the avatar (no idle timeout) stays another 6 min 40 s."""
    c.t -= 500
    c.room, c.caller = Room(created_at=c.t - 1), user(c.t)
    await c.start()
    await c.send(c.room.left(c.caller, c.t + 40))
    await c.avatar_leaves(c.t + 440)


async def recoverable_errors(c: Call) -> None:
    await c.start()
    c.report(PipelineError("stt", True), c.t + 10)
    await c.user_hangs_up(c.t + 40)


async def media_stopped(c: Call) -> None:
    """The avatar unpublishes its audio; the user waits 20 s in silence, then hangs up."""
    await c.start()
    await c.send(c.room.untrack(c.face, AUDIO, c.t + 20))
    await c.user_hangs_up(c.t + 40)


async def media_interrupted(c: Call) -> None:
    """The avatar's audio is unpublished for 8 s, then published again."""
    await c.start()
    await c.send(c.room.untrack(c.face, AUDIO, c.t + 20))
    await c.send(c.room.track(c.face, AUDIO, c.t + 28))
    await c.user_hangs_up(c.t + 40)


CASES: dict[str, tuple[Scenario, str, str]] = {
    "startup_failure_message": (startup_failure_message, "failed",
                                'reported startup_failure: "Avatar failed to become active"'),
    "avatar_never_joined": (avatar_never_joined, "failed", "never joined within 30 s"),
    "pipeline_error": (pipeline_error, "failed",
                       "unrecoverable TTS error 2.0 s before the avatar left"),
    "idle_timeout": (idle_timeout, "failed", "after 60 s of silence (idle timeout 60 s)"),
    "session_timeout": (session_timeout, "failed", "ended after 30 min 00 s"),
    "repeated_length": (repeated_length, "failed",
                        "avatar left after 20:00 of session, like 3 other call(s) in the last "
                        "hour (at 20:01): a fixed limit"),
    "network": (network, "failed", "avatar left with CONNECTION_TIMEOUT"),
    "network_before_hangup": (network_before_hangup, "failed",
                              "avatar left with CONNECTION_TIMEOUT 10 s after the user left: it "
                              "had died before the user hung up"),
    "agent_lost": (agent_lost, "failed", "the voice agent left with CONNECTION_TIMEOUT at "),
    "agent_lost_before_hangup": (agent_lost_before_hangup, "failed",
                                 "(its process or network died about 20 s before); the avatar "
                                 "left 2 s later"),
    "user_network": (user_network, "warning",
                     "the user's connection was lost (CONNECTION_TIMEOUT): the call ended on "
                     "the user's side"),
    "removed": (removed, "failed", "PARTICIPANT_REMOVED"),
    "server": (server, "failed", "ROOM_DELETED"),
    "black_screen": (black_screen, "failed", "avatar joined but published no video for 9"),
    "never_ready": (never_ready, "failed", "avatar joined but never said bot_ready in 14 s"),
    "no_audio": (no_audio, "failed", "published no audio"),
    "avatar_left": (avatar_left, "failed", "avatar left (CLIENT_INITIATED) while the user"),
    "abandoned": (abandoned, "warning", "the user left after 3.0 s of ringing"),
    "late_join": (late_join, "warning", "avatar joined 12.0 s after the call started"),
    "slow_to_speak": (slow_to_speak, "warning", "first spoke 8.0 s after joining"),
    "recoverable_errors": (recoverable_errors, "warning", "1 recoverable pipeline error"),
    "avatar_rejoined": (avatar_rejoined, "warning",
                        "the avatar rejoined the room 1 time(s) (DUPLICATE_IDENTITY"),
    "unattended": (unattended, "warning", "the avatar stayed 6 min 40 s after the user left"),
    "media_stopped": (media_stopped, "failed",
                      "audio stopped (unpublished) at {stopped} and never came back: 20 s "
                      "until the avatar left"),
    "media_interrupted": (media_interrupted, "warning",
                          "the avatar's audio stopped (unpublished) at {stopped} for 8 s"),
    "healthy": (healthy, "healthy", ""),
    "agent_hangup": (agent_hangup, "healthy", ""),
    "in_progress": (in_progress, "in_progress", ""),
}


def test_every_rule_has_a_case() -> None:
    assert {rule.name for rule in RULES} | {"healthy", "in_progress", *VARIANTS} == set(CASES)


# Cases named for how they end, with the verdict of another rule (or healthy).
VARIANTS = {"agent_hangup": "healthy", "network_before_hangup": "network",
            "agent_lost_before_hangup": "agent_lost"}
# The departure cause each of these cases must end with.
DEPARTURES = {"agent_hangup": "agent_hangup", "network_before_hangup": "network",
              "agent_lost": "agent_lost", "agent_lost_before_hangup": "agent_lost",
              "user_network": "user_network", "healthy": "user_hangup",
              "avatar_rejoined": "user_hangup"}


@pytest.mark.parametrize("name", list(CASES))
async def test_verdict(start_monitor: StartMonitor, monkeypatch: pytest.MonkeyPatch, name: str
                       ) -> None:
    scenario, status, evidence = CASES[name]
    # The scenarios fire deadlines themselves (tracker.expire): the sidecar's own clock would
    # fire a join timeout between two of their webhooks on a loaded machine (the call is dated
    # 100 s ago, so only LATE_JOIN_GRACE holds it off).
    monkeypatch.setattr("monitor.app.DEADLINE_TICK_SECONDS", 3600.0)
    sidecar = await start_monitor()
    call = Call(sidecar, float(int(time.time()) - 100))
    await scenario(call)
    body = await call.verdict()
    verdict = "healthy" if status == "healthy" else VARIANTS.get(name, name)
    assert (body["verdict"], body["status"]) == (verdict, status), body["findings"]
    if name in DEPARTURES:
        assert body["avatar"]["departure"] == DEPARTURES[name]
    if evidence:
        # Webhooks dated 100 s ago: their times are taken as the end of their second.
        evidence = evidence.replace("{stopped}", utc_clock(call.t + 21))
        finding = body["findings"][0]
        assert evidence in finding["evidence"], finding
        rule = next(r for r in RULES if r.name == verdict)
        assert (finding["section"], finding["next_step"]) == (rule.section, rule.next_step)
    else:
        assert body["findings"] == []
    assert body["timeline"][0]["event"] == "call_started"
    assert body["participants"][0]["role"] == "user"


async def test_black_screen_waits_for_the_grace_period(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, time.time() - 5)
    await call.start(tracks=(AUDIO,))
    assert (await call.verdict())["verdict"] == "in_progress"


async def test_readiness_is_in_the_record_and_its_timeline(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await call.start()  # the avatar joins 2 s after the call started
    call.observe(speech=(call.t + 4, call.t + 30), ready=1.5)
    await call.user_hangs_up(call.t + 40)
    body = await call.verdict()
    assert body["verdict"] == "healthy", body["findings"]
    assert body["avatar"]["expects_ready"] is True
    assert body["avatar"]["ready_at"] == call.t + 3.5
    assert body["avatar"]["ready_latency_seconds"] == 3.5
    assert body["avatar"]["join_to_ready_seconds"] == 1.5
    ready = next(e for e in body["timeline"] if e["event"] == "avatar_ready")
    assert ready["detail"] == ("bot_ready, 3.5 s after the call started, 1.5 s after the avatar "
                               "joined")


@pytest.mark.parametrize(("face", "config", "flagged"), [
    # LiveKit's inference avatar of provider lemonslice: it announces readiness.
    (lambda t: avatar(t, "lemonslice-inference-avatar", provider="lemonslice"), {}, True),
    (lambda t: avatar(t, "x-inference-avatar", provider="lemonslice"), {}, True),
    # Other providers never send bot_ready: not flagged.
    (lambda t: avatar(t, "simli-avatar-agent"), {}, False),
    (lambda t: avatar(t, "x-inference-avatar", provider="tavus"), {}, False),
    # Configured off.
    (lambda t: avatar(t), {"ready_identities": (), "ready_providers": ()}, False),
    (lambda t: avatar(t, "tavus-avatar-agent"), {"ready_identities": ("tavus-*",)}, True),
])
async def test_only_avatars_that_announce_readiness_are_expected_to(
        start_monitor: StartMonitor, face: Callable[[float], models.ParticipantInfo],
        config: dict[str, object], flagged: bool) -> None:
    sidecar = await start_monitor(**config)
    call = Call(sidecar, float(int(time.time()) - 100))
    await call.send(call.room.started(), call.room.joined(call.caller))
    call.face = face(call.t + 2)
    await call.send(call.room.joined(call.face), call.room.track(call.face, VIDEO, call.t + 3),
                    call.room.track(call.face, AUDIO, call.t + 3))
    call.observe(speech=(call.t + 3, call.t + 30), ready=None)
    await call.user_hangs_up(call.t + 40)
    body = await call.verdict()
    assert body["avatar"]["expects_ready"] is flagged
    assert body["verdict"] == ("never_ready" if flagged else "healthy"), body["findings"]


async def test_readiness_is_not_judged_when_the_observer_came_after_the_avatar(
        sidecar: RunningMonitor) -> None:
    """An observer that joined after the avatar (a restarted sidecar) may have missed its
    bot_ready: no finding."""
    call = Call(sidecar, float(int(time.time()) - 100))
    await call.start()
    sidecar.monitor.tracker.observing(call.room.sid, call.t + 20)
    await call.user_hangs_up(call.t + 40)
    body = await call.verdict()
    assert body["avatar"]["expects_ready"] is True
    assert "never_ready" not in [f["rule"] for f in body["findings"]]


async def test_the_avatar_saying_idle_timeout_is_the_evidence(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await call.start()
    call.observe(speech=(call.t + 3, call.t + 5))  # 45 s of silence: not the idle timeout
    call.report(AvatarIdleTimeout(), call.t + 49)
    await call.avatar_leaves(call.t + 50)
    body = await call.verdict()
    assert body["verdict"] == "idle_timeout", body["findings"]
    assert body["findings"][0]["evidence"] == "the avatar said idle_timeout, then left 1.0 s later"
    assert [e["detail"] for e in body["timeline"] if e["event"] == "avatar_said"] == [
        "the avatar said idle_timeout"]


async def test_a_fatal_avatar_error_is_a_pipeline_error_of_the_avatar(
        sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await call.start()
    call.observe(speech=(call.t + 3, call.t + 5))
    call.report(AvatarError("video_generation_error", fatal=True), call.t + 20)
    await call.avatar_leaves(call.t + 21)
    body = await call.verdict()
    assert body["verdict"] == "pipeline_error", body["findings"]
    assert body["findings"][0]["evidence"] == \
        "unrecoverable AVATAR error 1.0 s before the avatar left"
    assert body["pipeline"]["unrecoverable_error"]["component"] == "avatar"
    assert "the avatar said video_generation_error" in [e["detail"] for e in body["timeline"]]


async def test_the_timeline_tells_the_call(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await pipeline_error(call)
    body = await call.verdict()
    events = [entry["event"] for entry in body["timeline"]]
    assert events == ["call_started", "joined", "avatar_joined", "track", "track",
                      "pipeline_error", "left", "avatar_left", "call_ended"]
    assert body["avatar"]["departure"] == "pipeline_error"
    assert body["avatar"]["disconnect_reason"] == "client_initiated"
    assert body["pipeline"]["unrecoverable_error"]["component"] == "tts"
    assert [p["role"] for p in body["participants"]] == ["user", "avatar"]
    assert body["participants"][1]["left_at"] == call.t + 42


# -- the API ---------------------------------------------------------------------------------

async def test_list_filters_by_state_and_verdict(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor()
    t = float(int(time.time()) - 100)
    failing, fine, live = Call(sidecar, t), Call(sidecar, t), Call(sidecar, t)
    await network(failing)
    await healthy(fine)
    await in_progress(live)
    status, body = await get(sidecar, "/v1/calls")
    assert status == 200
    assert [c["room"] for c in body["calls"]] == [live.room.name, fine.room.name,
                                                  failing.room.name]
    for query, rooms in (("state=live", [live]), ("state=ended", [fine, failing]),
                         ("state=finished", [fine, failing]),
                         ("state=finished&verdict=failed", [failing]),
                         ("verdict=failed", [failing]), ("verdict=network", [failing]),
                         ("verdict=healthy", [fine]), ("limit=1", [live])):
        _, body = await get(sidecar, f"/v1/calls?{query}")
        assert [c["room"] for c in body["calls"]] == [c.room.name for c in rooms], query
    _, body = await get(sidecar, "/v1/calls", f"Bearer {access_token(room=fine.room.name)}")
    assert [c["room"] for c in body["calls"]] == [fine.room.name]  # a room token sees its room


@pytest.mark.parametrize("query", ["state=sleeping", "verdict=bad", "limit=0", "limit=5000",
                                   "limit=many", "verdict=" + "x" * 2000])
async def test_bad_queries_are_400(sidecar: RunningMonitor, query: str) -> None:
    status, body = await get(sidecar, f"/v1/calls?{query}")
    assert (status, body["error"]) == (400, "bad_query")


async def test_huge_query_strings_are_refused(sidecar: RunningMonitor) -> None:
    async with sidecar.http.get(sidecar.url + "/v1/calls?state=" + "x" * 20_000) as resp:
        assert resp.status in (400, 414)
    assert (await get(sidecar, "/v1/calls"))[0] == 200  # still serving


async def test_unknown_room_is_404_and_bad_tokens_401(sidecar: RunningMonitor) -> None:
    status, body = await get(sidecar, "/v1/calls/nowhere")
    assert (status, body["error"]) == (404, "not_found")
    for auth in ("", "Bearer nonsense", f"Bearer {access_token(secret='another-secret-' * 3)}"):
        status, body = await get(sidecar, "/v1/calls", auth)
        assert (status, body["error"]) == (401, "unauthorized"), auth
    status, body = await get(sidecar, "/v1/calls/nowhere", f"Bearer {access_token(room='mine')}")
    assert (status, body["error"]) == (403, "forbidden")


async def test_public_status_needs_no_token(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(public_status=True)
    assert (await get(sidecar, "/v1/calls", auth=""))[0] == 200


async def test_room_names_never_reach_metrics(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await network(call)
    text = await sidecar.scrape()
    assert call.room.name not in text and call.room.sid not in text
    assert call.caller.identity not in text


# -- memory bound ----------------------------------------------------------------------------

async def test_finished_calls_are_bounded_and_oldest_go_first(start_monitor: StartMonitor
                                                              ) -> None:
    sidecar = await start_monitor(recent_calls=3)
    t = float(int(time.time()) - 100)
    calls = [Call(sidecar, t) for _ in range(5)]
    for call in calls:
        await network(call)
    records: CallRecords = sidecar.monitor.status.records
    assert [r.room for r in records.finished.values()] == [c.room.name for c in calls[2:]]
    assert (await get(sidecar, f"/v1/calls/{calls[0].room.name}"))[0] == 404


async def test_a_chatty_call_keeps_a_bounded_timeline(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await call.start()
    for i in range(200):
        call.report(PipelineError("llm", True), call.t + 3 + i * 0.1)
    body = await call.verdict()
    assert len(body["timeline"]) == MAX_ENTRIES
    assert body["pipeline"]["recoverable_errors"] == 200


# -- the status page (in a real browser: tests/e2e/test_status_page.py) ---------------------

async def page(sidecar: RunningMonitor, path: str) -> tuple[int, str]:
    async with sidecar.http.get(sidecar.url + path) as resp:
        assert resp.content_type == "text/html"
        return resp.status, await resp.text()


async def test_the_page_needs_a_token_unless_public(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor()
    call = Call(sidecar, float(int(time.time()) - 100))
    await network(call)
    status, html = await page(sidecar, "/")
    assert status == 401 and "--public-status" in html and call.room.name not in html
    token = access_token()
    # A ?token= is moved into a session cookie by a redirect to the address without it.
    async with sidecar.http.get(f"{sidecar.url}/?token={token}&x=1",
                                allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/?x=1"
        cookie = resp.cookies[SESSION_COOKIE]
        assert cookie.value == token
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    async with sidecar.http.get(f"{sidecar.url}/?token=not-a-token",
                                allow_redirects=False) as resp:
        assert resp.status == 401 and SESSION_COOKIE not in resp.cookies
    # A browser (IP addresses get cookies too) follows it; no link carries the token.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(f"{sidecar.url}/?token={token}") as resp:
            html = await resp.text()
            assert resp.status == 200 and call.room.name in html
            assert str(resp.url) == f"{sidecar.url}/"
        assert f'href="/calls/{call.room.sid}"' in html and "token" not in html
        async with browser.get(f"{sidecar.url}/calls/{call.room.name}") as resp:
            html = await resp.text()
            assert resp.status == 200 and "avatar left with CONNECTION_TIMEOUT" in html
            assert "token" not in html
    # The Authorization header carries it as well.
    async with sidecar.http.get(f"{sidecar.url}/",
                                headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and "token" not in await resp.text()


async def test_every_answer_carries_the_security_headers(sidecar: RunningMonitor) -> None:
    """Pages, the API, aiohttp's own 404 and 405, and the webhook's answers and refusals."""
    requests = [("GET", path, b"") for path in ("/", "/calls/nowhere", "/v1/calls", "/metrics",
                                                 "/healthz", "/nowhere", "/webhook")]
    requests += [("POST", "/webhook", encode(Room().started())), ("POST", "/webhook", b"")]
    for method, path, body in requests:
        headers = {"Authorization": sign(body)} if body else {}
        async with sidecar.http.request(method, sidecar.url + path, data=body,
                                        headers=headers) as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            assert resp.headers["Referrer-Policy"] == "no-referrer", path
            assert resp.headers["Cache-Control"] == "no-store", path
            if resp.content_type == "text/html":
                policy = resp.headers["Content-Security-Policy"]
                assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
                assert style_hash(STYLE) in policy


async def test_the_page_escapes_what_participants_named(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(public_status=True)
    call = Call(sidecar, float(int(time.time()) - 100))
    call.room = Room(name="<script>alert(1)</script>", created_at=call.t - 1)
    call.caller = user(call.t, identity='"><img src=x onerror=alert(2)>')
    await network(call)
    status, html = await page(sidecar, "/")
    assert status == 200
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    status, html = await page(sidecar, "/calls/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 200 and "<img src=x" not in html and "&lt;img src=x" in html
    status, html = await page(sidecar, "/calls/nowhere")
    assert status == 404


def test_memory_per_kept_record_is_bounded() -> None:
    """The documented bound: a finished call's record, however chatty, stays under 8 KiB."""
    import tracemalloc

    from monitor.app import build_monitor
    from monitor.config import Config
    from monitor.intake.events import parse_event
    from tests.support.webhooks import encode

    monitor, calls = build_monitor(Config("k", "s", recent_calls=300)), 300
    t = time.time() - 1000
    scripts = []
    for _ in range(calls):
        room, caller, face = Room(created_at=t), user(t), avatar(t + 1)
        scripts.append((room, [parse_event(encode(e)) for e in (
            room.joined(caller), room.joined(face), room.track(face, AUDIO, t + 2),
            room.track(face, VIDEO, t + 2))], [parse_event(encode(e)) for e in (
                room.left(caller, t + 50), room.left(face, t + 51), room.finished(t + 52))]))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for room, opening, ending in scripts:
        for event in opening:
            monitor.tracker.apply(event, time.time())
        for _ in range(100):  # far more than the timeline keeps
            monitor.bridge.accept("http", ReportedEvent(PipelineError("llm", True)),
                                  time.time(), room.name)
        for event in ending:
            monitor.tracker.apply(event, time.time())
    monitor.tracker.expire(time.time() + 100)  # evict the ended calls from the tracker
    per_record = (tracemalloc.get_traced_memory()[0] - before) / calls
    tracemalloc.stop()
    assert len(monitor.status.records.finished) == calls
    assert all(len(r.entries) == MAX_ENTRIES for r in monitor.status.records.finished.values())
    assert per_record < 8 * 1024, per_record


async def test_an_evicted_call_keeps_its_record(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(max_calls=1)
    first, second = (Call(sidecar, float(int(time.time()) - 100)) for _ in range(2))
    await first.start()
    await second.start()  # --max-calls 1: the first call is dropped from tracking
    body = await first.verdict()
    assert (body["live"], body["state"]) == (False, "ended")
    assert body["timeline"][-1]["event"] == "evicted"
    assert body["ended_at"] == body["timeline"][-2]["at"]
