"""Avatar calls with the real livekit-agents stack: a dispatched worker running an AgentSession
instrumented with avatar_monitor_agent, an AvatarRunner avatar, and a frontend user.

Each test has its own livekit-server, sidecar, worker and room, so every counter starts at zero,
and asserts the exact metric values and the call's verdict. The disconnect reasons livekit-server
gives each participant are asserted too: they are the table in docs/diagnosis.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from livekit import api

from tests.e2e.agent_stack import AgentWorker, Frontend, dispatch
from tests.e2e.agent_worker import Plan
from tests.e2e.avatar_provider import AvatarProvider
from tests.e2e.harness import LOGS, Verdict
from tests.support.livekit_server import LiveKitServer
from tests.support.metrics import Expect, MetricsClient, Snapshot, expect
from tests.support.participants import Server
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.e2e

CAUSES = ("user_hangup", "agent_hangup", "pipeline_error", "idle_timeout", "session_timeout",
          "removed", "server", "network", "agent_lost", "user_network", "replaced", "unknown")
# How long after the agent's crash the user gives up on a frozen avatar: less than the ~20 s
# livekit-server takes to declare the agent gone.
PATIENCE = 10.0
CALL_TIMEOUT = 30.0  # a whole call: dispatch, joins, a reply, the ending


@pytest.fixture
def sidecar_base_args(request: pytest.FixtureRequest, livekit_port: int) -> list[str]:
    """The room observer on, pointed at the test's livekit-server, unless the test is marked
    `sidecar_alone` (webhooks and the agent's /v1/events only)."""
    if request.node.get_closest_marker("sidecar_alone") is not None:
        return []
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1"]


@pytest.fixture
def departure_timeout() -> int:
    """livekit's default departure timeout (20 s): an agent takes 2 to 3 s to leave after its
    user, and the avatar follows it."""
    return 20


@pytest.fixture
async def provider() -> AsyncIterator[AvatarProvider]:
    provider = AvatarProvider()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture
async def worker(tmp_path: Path, livekit: LiveKitServer, sidecar: Sidecar,
                 provider: AvatarProvider, request: pytest.FixtureRequest
                 ) -> AsyncIterator[AgentWorker]:
    worker = AgentWorker(tmp_path / "worker", livekit, sidecar, provider)
    request.node.stash.setdefault(LOGS, []).append(("agent worker", worker.log_path))
    await worker.start()
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
async def nothing_refused(metrics: MetricsClient) -> AsyncIterator[None]:
    """The worker and its avatar are the room's agents: none of their data messages or
    lk.agent.session streams is refused, the first ones included (a worker's first stream
    opens before the observer's room holds the worker, see monitor/observer/senders.py)."""
    yield
    snapshot = await metrics.scrape()
    refused = {labels: value for labels, value in
               snapshot.series("avatar_monitor_data_messages_refused_total").items() if value}
    assert refused == {}, refused


async def start_call(server: Server, room_service: api.LiveKitAPI, worker: AgentWorker,
                     room: str, metrics: MetricsClient, plan: Plan | None = None,
                     avatar: bool = True) -> Frontend:
    """The user joins, the agent is dispatched; returns once the agent listens and (with
    `avatar`) the call is active with the avatar's video in."""
    user = await Frontend.join(server, room)
    await dispatch(room_service, worker, room, plan or Plan())
    await user.agent_state("listening", CALL_TIMEOUT)
    if avatar:
        await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                               expect("avatar_time_to_first_track_seconds_count", 1,
                                      kind="video"), timeout=CALL_TIMEOUT)
    return user


async def converse(user: Frontend, metrics: MetricsClient) -> None:
    """One exchange: the user says hello, the avatar speaks the agent's reply."""
    await user.say("hello")
    await metrics.wait_all(expect("avatar_time_to_first_speech_seconds_count", 1),
                           timeout=CALL_TIMEOUT)
    await user.agent_state("listening", CALL_TIMEOUT)


def departures(cause: str | None) -> list[Expect]:
    """`cause` counted once (None: no departure), every other cause zero."""
    return [expect("avatar_departures_total", 1 if c == cause else 0, cause=c) for c in CAUSES]


def ended() -> list[Expect]:
    return [expect("avatar_calls_in_progress", 0, state="ringing"),
            expect("avatar_calls_in_progress", 0, state="active"),
            expect("avatar_calls_started_total", 1)]


EVERYONE_LEFT = {("user", "client_initiated"): 1, ("agent", "client_initiated"): 1,
                 ("avatar", "client_initiated"): 1}  # each by their own doing


def disconnects(snapshot: Snapshot) -> dict[tuple[str, str], float]:
    """The non-zero avatar_disconnects_total series, by (role, reason)."""
    return {(dict(labels)["role"], dict(labels)["reason"]): value
            for labels, value in snapshot.series("avatar_disconnects_total").items() if value}


async def all_left(metrics: MetricsClient, count: int = 3) -> Snapshot:
    """Wait until `count` participants' departures are counted."""
    return await metrics.wait_for(lambda s: sum(disconnects(s).values()) == count,
                                  f"{count} participants left", CALL_TIMEOUT)


def assert_verdict(body: dict, status: str, verdict: str, departure: str | None) -> None:
    """The call's status (failed, warning, healthy), its verdict's name and the avatar's
    departure."""
    seen = (body["status"], body["verdict"], (body["avatar"] or {}).get("departure"))
    assert seen == (status, verdict, departure), body


async def test_user_hangs_up(server: Server, room_service: api.LiveKitAPI, worker: AgentWorker,
                             room_name: str, metrics: MetricsClient, verdict: Verdict) -> None:
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    await user.hang_up()
    snapshot = await all_left(metrics)
    assert disconnects(snapshot) == EVERYONE_LEFT
    await metrics.wait_all(*ended(), *departures("user_hangup"),
                           expect("avatar_pipeline_closed_total", 1,
                                  reason="participant_disconnected"),
                           *one_reply_measured(),
                           # instrument() and livekit-agents' broadcast both had the reply
                           expect("avatar_data_messages_total", 1, topic="agent-session",
                                  type="agent_latency"))
    assert_verdict(await verdict(room_name), "healthy", "healthy", "user_hangup")


def one_reply_measured(avatar: bool = True) -> list[Expect]:
    """One reply's latencies (whichever paths reported them), and with `avatar` the avatar's
    playback latency and join time, which only instrument() reports."""
    return [expect("avatar_agent_latency_seconds_count", 1, stage="llm_ttft"),
            expect("avatar_agent_latency_seconds_count", 1, stage="tts_ttfb"),
            expect("avatar_agent_latency_seconds_count", int(avatar), stage="avatar_playback"),
            expect("avatar_agent_latency_seconds_count", int(avatar), stage="avatar_join")]


async def agent_leaves_then_user_hangs_up(user: Frontend, metrics: MetricsClient, phrase: str,
                                          avatar_reason: str) -> None:
    """The user says `phrase`: the agent leaves by itself and the avatar with `avatar_reason`;
    the user, left alone, hangs up."""
    await user.say(phrase)
    snapshot = await all_left(metrics, 2)
    assert disconnects(snapshot) == {("agent", "client_initiated"): 1,
                                     ("avatar", avatar_reason): 1}
    await user.hang_up()
    snapshot = await all_left(metrics, 3)
    assert disconnects(snapshot)[("user", "client_initiated")] == 1


async def agent_hung_up(metrics: MetricsClient, verdict: Verdict, room_name: str) -> None:
    """The call ended as the agent ended it: counted and judged a healthy agent hang-up."""
    await metrics.wait_all(*ended(), *departures("agent_hangup"),
                           expect("avatar_pipeline_closed_total", 1, reason="user_initiated"))
    assert_verdict(await verdict(room_name), "healthy", "healthy", "agent_hangup")


async def test_livekit_agents_broadcast_alone_reports_errors_and_turns(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """An agent without instrument(): the observer decodes livekit-agents' lk.agent.session
    messages into the reply's latencies and the TTS error."""
    user = await start_call(server, room_service, worker, room_name, metrics,
                            Plan(instrument=False))
    await converse(user, metrics)
    await user.say("fail")
    await metrics.wait_all(expect("avatar_pipeline_errors_total", 1, component="tts",
                                  recoverable="false"), timeout=CALL_TIMEOUT)
    await user.agent_state("listening")
    await user.hang_up()
    snapshot = await all_left(metrics)
    assert disconnects(snapshot) == EVERYONE_LEFT
    await metrics.wait_all(
        *ended(), *departures("pipeline_error"), *one_reply_measured(avatar=False),
        expect("avatar_monitor_reported_events_total", 2, source="agent_session",
               outcome="applied"),
        # the avatar's own bot_ready, which nobody forwards without instrument()
        expect("avatar_monitor_reported_events_total", 1, source="data_channel",
               outcome="applied"),
        expect("avatar_monitor_reported_events_total", 0, source="http", outcome="applied"),
        expect("avatar_pipeline_closed_total", 0, reason="participant_disconnected"))
    body = await verdict(room_name)
    assert_verdict(body, "failed", "pipeline_error", "pipeline_error")
    # the provider's own words, read from livekit-agents' broadcast
    assert "(APIError: scripted TTS outage)" in body["findings"][0]["evidence"], body["findings"]


async def test_end_call_tool_agent_leaves_avatar_follows(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """EndCallTool(delete_room=False): the agent says goodbye and leaves, the avatar follows,
    the user is still there."""
    user = await start_call(server, room_service, worker, room_name, metrics,
                            Plan(end_call_deletes_room=False))
    await converse(user, metrics)
    await agent_leaves_then_user_hangs_up(user, metrics, "bye", "client_initiated")
    await agent_hung_up(metrics, verdict, room_name)


async def test_avatar_session_closed_then_session_shutdown(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """The app calls AvatarSession.aclose() (RemoveParticipant on the avatar), then
    session.shutdown()."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    await agent_leaves_then_user_hangs_up(user, metrics, "close avatar", "participant_removed")
    await agent_hung_up(metrics, verdict, room_name)


async def test_end_call_tool_deletes_the_room(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """EndCallTool() as it comes: the session ends, the job deletes the room."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    await user.say("bye")
    snapshot = await all_left(metrics)
    assert disconnects(snapshot) == {("user", "room_deleted"): 1,
                                     ("agent", "client_initiated"): 1,
                                     ("avatar", "room_deleted"): 1}
    await agent_hung_up(metrics, verdict, room_name)


async def test_unrecoverable_tts_error_closes_the_session(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """With max_unrecoverable_errors=0 one TTS failure closes the session (reason error)."""
    user = await start_call(server, room_service, worker, room_name, metrics,
                            Plan(max_unrecoverable_errors=0))
    await agent_leaves_then_user_hangs_up(user, metrics, "fail", "client_initiated")
    await metrics.wait_all(*ended(), *departures("pipeline_error"),
                           expect("avatar_pipeline_errors_total", 1, component="tts",
                                  recoverable="false"),
                           expect("avatar_pipeline_errors_total", 0, component="tts",
                                  recoverable="true"),
                           expect("avatar_pipeline_closed_total", 1, reason="error"))
    body = await verdict(room_name)
    assert_verdict(body, "failed", "pipeline_error", "pipeline_error")
    # instrument() sent the error's own words, and the session close's
    assert "(APIError: scripted TTS outage)" in body["findings"][0]["evidence"], body["findings"]
    closes = [e["detail"] for e in body["timeline"] if e["event"] == "session_closed"]
    assert closes and "APIError: scripted TTS outage" in closes[0], closes


async def test_one_tts_error_leaves_a_mute_avatar(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """livekit-agents' default max_unrecoverable_errors (3): one TTS failure does not close
    the session; the reply is lost, the avatar stays mute, and the user gives up."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await user.say("fail")
    await metrics.wait_all(expect("avatar_pipeline_errors_total", 1, component="tts",
                                  recoverable="false"), timeout=CALL_TIMEOUT)
    await user.agent_state("listening")
    await user.hang_up()
    snapshot = await all_left(metrics)
    assert disconnects(snapshot) == {("user", "client_initiated"): 1,
                                     ("agent", "client_initiated"): 1,
                                     ("avatar", "client_initiated"): 1}
    await metrics.wait_all(*ended(), *departures("pipeline_error"),
                           expect("avatar_time_to_first_speech_seconds_count", 0),
                           expect("avatar_data_messages_total", 1, topic="agent-session",
                                  type="pipeline_error"),
                           expect("avatar_pipeline_closed_total", 1,
                                  reason="participant_disconnected"))
    assert_verdict(await verdict(room_name), "failed", "pipeline_error", "pipeline_error")


async def test_recoverable_tts_error_is_survived(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """A retryable TTS failure: livekit-agents retries, the avatar speaks, nothing failed."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await user.say("flaky")
    await metrics.wait_all(expect("avatar_pipeline_errors_total", 1, component="tts",
                                  recoverable="true"),
                           expect("avatar_time_to_first_speech_seconds_count", 1),
                           timeout=CALL_TIMEOUT)
    await user.agent_state("listening")
    await user.hang_up()
    snapshot = await all_left(metrics)
    assert disconnects(snapshot) == EVERYONE_LEFT
    await metrics.wait_all(*ended(), *departures("user_hangup"),
                           expect("avatar_pipeline_errors_total", 0, component="tts",
                                  recoverable="false"))
    assert_verdict(await verdict(room_name), "warning", "recoverable_errors", "user_hangup")


async def test_avatar_never_comes(server: Server, room_service: api.LiveKitAPI,
                                  worker: AgentWorker, provider: AvatarProvider,
                                  room_name: str, metrics: MetricsClient,
                                  verdict: Verdict) -> None:
    """The provider takes the session and its avatar never joins: wait_for_avatar gives up,
    tells the frontend and the sidecar, and the agent ends its session."""
    provider.joins = False
    user = await start_call(server, room_service, worker, room_name, metrics,
                            Plan(avatar_wait=2.0), avatar=False)
    await metrics.wait_all(expect("avatar_startup_failures_total", 1, cause="message"),
                           timeout=CALL_TIMEOUT)
    snapshot = await all_left(metrics, 1)
    assert disconnects(snapshot) == {("agent", "client_initiated"): 1}
    await user.hang_up()
    snapshot = await all_left(metrics, 2)
    assert disconnects(snapshot) == {("agent", "client_initiated"): 1,
                                     ("user", "client_initiated"): 1}
    await metrics.wait_all(*ended(), *departures(None),
                           expect("avatar_startup_failures_total", 0, cause="join_timeout"))
    assert provider.sessions == 1
    assert_verdict(await verdict(room_name), "failed", "startup_failure_message", None)


@pytest.mark.sidecar_args("--idle-timeout", "5", "--timeout-tolerance", "2")
async def test_avatar_idle_timeout(server: Server, room_service: api.LiveKitAPI,
                                   worker: AgentWorker, provider: AvatarProvider,
                                   room_name: str, metrics: MetricsClient,
                                   verdict: Verdict) -> None:
    """The avatar leaves after 5 s without speech; the sidecar times the silence from the
    agent's lk.agent.state."""
    await avatar_idles_out(server, room_service, worker, provider, room_name, metrics,
                           verdict)


async def avatar_idles_out(server: Server, room_service: api.LiveKitAPI, worker: AgentWorker,
                           provider: AvatarProvider, room_name: str, metrics: MetricsClient,
                           verdict: Verdict, *also: Expect) -> None:
    """After one exchange the avatar idles out (5 s): an idle_timeout departure; then the user
    hangs up. `also`: more values expected once the call has ended."""
    provider.idle_timeout = 5.0
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    snapshot = await all_left(metrics, 1)
    assert disconnects(snapshot) == {("avatar", "client_initiated"): 1}
    await metrics.wait_all(*departures("idle_timeout"),
                           expect("avatar_timeouts_total", 1, timeout="idle"))
    await user.hang_up()
    snapshot = await all_left(metrics, 3)
    assert disconnects(snapshot) == EVERYONE_LEFT
    await metrics.wait_all(*ended(), *also)
    assert_verdict(await verdict(room_name), "failed", "idle_timeout", "idle_timeout")


async def test_a_killed_agent_takes_its_avatar_with_it(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """The worker's processes are killed mid-call: livekit-server drops the agent with
    CONNECTION_TIMEOUT, the avatar follows its agent out; the voice agent's crash is the cause."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    worker.kill()
    snapshot = await all_left(metrics, 2)
    assert disconnects(snapshot) == {("agent", "connection_timeout"): 1,
                                     ("avatar", "client_initiated"): 1}
    await metrics.wait_all(*departures("agent_lost"))
    await user.hang_up()
    await all_left(metrics, 3)
    await metrics.wait_all(*ended())
    body = await verdict(room_name)
    assert_verdict(body, "failed", "agent_lost", "agent_lost")
    assert "the voice agent left with CONNECTION_TIMEOUT" in body["findings"][0]["evidence"]


async def test_a_killed_agent_is_not_hidden_by_the_users_hang_up(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """The worker is killed; the user faces a frozen avatar and hangs up 10 s later, before the
    server declares the agent gone; the avatar then follows its agent: still agent_lost."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    worker.kill()
    await asyncio.sleep(PATIENCE)  # the user's patience: the scenario itself, not a wait
    await user.hang_up()
    snapshot = await all_left(metrics, 3)
    assert disconnects(snapshot) == {("user", "client_initiated"): 1,
                                     ("agent", "connection_timeout"): 1,
                                     ("avatar", "client_initiated"): 1}
    await metrics.wait_all(*ended(), *departures("agent_lost"))
    assert_verdict(await verdict(room_name), "failed", "agent_lost", "agent_lost")


async def test_a_hot_swapped_avatar_is_one_call_with_two_sessions(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """The agent swaps its avatar mid-call (a second AvatarSession, then aclose() of the
    first): each session's join, first tracks, duration and departure counted once, one
    call, a healthy ending."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await converse(user, metrics)
    await user.say("swap avatar")
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="replaced"),
                           expect("avatar_time_to_first_track_seconds_count", 2, kind="video"),
                           timeout=CALL_TIMEOUT)
    await user.agent_state("listening", CALL_TIMEOUT)
    await user.hang_up()
    snapshot = await all_left(metrics, 4)
    assert disconnects(snapshot) == {("user", "client_initiated"): 1,
                                     ("agent", "client_initiated"): 1,
                                     ("avatar", "participant_removed"): 1,
                                     ("avatar", "client_initiated"): 1}
    await metrics.wait_all(*ended(), expect("avatar_departures_total", 1, cause="replaced"),
                           expect("avatar_departures_total", 1, cause="user_hangup"),
                           expect("avatar_session_duration_seconds_count", 2),
                           expect("avatar_join_latency_seconds_count", 1),
                           expect("avatar_time_to_first_track_seconds_count", 2, kind="audio"),
                           # the first avatar's tracks left with it: no interruption
                           expect("avatar_media_interruptions_total", 0, kind="audio"),
                           expect("avatar_media_interruptions_total", 0, kind="video"))
    body = await verdict(room_name)
    assert_verdict(body, "healthy", "healthy", "user_hangup")
    events = [entry["event"] for entry in body["timeline"]]
    assert "avatar_session" in events, events


def reported(snapshot: Snapshot, outcome: str) -> dict[str, float]:
    """avatar_monitor_reported_events_total of `outcome`, by source."""
    return {dict(labels)["source"]: value for labels, value in
            snapshot.series("avatar_monitor_reported_events_total").items()
            if dict(labels)["outcome"] == outcome}


def avatar_said(kind: str, value: float) -> Expect:
    """The observer read the avatar's `kind` on its topic `lemonslice` `value` times."""
    return expect("avatar_data_messages_total", value, topic="lemonslice-avatar", type=kind)


async def one_ready_reply_then_hang_up(user: Frontend, metrics: MetricsClient,
                                       *also: Expect) -> Snapshot:
    """One exchange, then the user hangs up and everyone leaves: one ready latency, one first
    speech and one reply measured, whichever paths reported them (and `also`)."""
    await converse(user, metrics)
    await user.hang_up()
    snapshot = await all_left(metrics)
    assert disconnects(snapshot) == EVERYONE_LEFT
    return await metrics.wait_all(
        *ended(), *departures("user_hangup"), *one_reply_measured(),
        expect("avatar_ready_latency_seconds_count", 1),
        expect("avatar_time_to_first_speech_seconds_count", 1),
        expect("avatar_pipeline_closed_total", 1, reason="participant_disconnected"), *also)


@pytest.mark.sidecar_alone
async def test_without_the_observer_the_agent_reports_what_it_would_read(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """No --livekit-url, so no hidden participant: instrument() forwards the avatar's bot_ready
    (the ready latency) and the agent's state (the first speech), each counted once."""
    user = await start_call(server, room_service, worker, room_name, metrics)
    await metrics.wait_all(expect("avatar_ready_latency_seconds_count", 1), timeout=CALL_TIMEOUT)
    snapshot = await one_ready_reply_then_hang_up(
        user, metrics, avatar_said("bot_ready", 0))  # nobody read the data channel
    assert reported(snapshot, "duplicate") == {"data_channel": 0, "agent_session": 0, "http": 0}
    assert reported(snapshot, "applied")["data_channel"] == 0
    assert_verdict(await verdict(room_name), "healthy", "healthy", "user_hangup")


@pytest.mark.sidecar_alone
async def test_without_the_observer_the_avatar_says_its_idle_timeout(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker,
        provider: AvatarProvider, room_name: str, metrics: MetricsClient,
        verdict: Verdict) -> None:
    """The avatar idles out after 5 s and says so before leaving. The sidecar's own idle timeout
    is 60 s (5 s of silence is not near it), so the departure is the avatar's word, which only
    the voice agent heard and forwarded."""
    await avatar_idles_out(server, room_service, worker, provider, room_name, metrics,
                           verdict, avatar_said("idle_timeout", 0))


async def test_the_avatars_word_and_the_agents_state_by_both_paths_count_once(
        server: Server, room_service: api.LiveKitAPI, worker: AgentWorker, room_name: str,
        metrics: MetricsClient, verdict: Verdict) -> None:
    """The observer reads the avatar's bot_ready and the agent's lk.agent.state; instrument()
    (by HTTP only here) reports both too. One ready latency and one first speech; of bot_ready's
    two copies, one is applied and the other a duplicate."""
    user = await start_call(server, room_service, worker, room_name, metrics,
                            Plan(data_channel=False))
    snapshot = await one_ready_reply_then_hang_up(user, metrics, avatar_said("bot_ready", 1))
    applied, duplicates = reported(snapshot, "applied"), reported(snapshot, "duplicate")
    # the data channel carried only the avatar's own bot_ready: applied, or the HTTP copy's
    # duplicate; the reply's latencies came by HTTP and by livekit-agents' broadcast
    assert applied["data_channel"] + duplicates["data_channel"] == 1, snapshot
    assert sum(duplicates.values()) == 2, duplicates
    assert_verdict(await verdict(room_name), "healthy", "healthy", "user_hangup")
