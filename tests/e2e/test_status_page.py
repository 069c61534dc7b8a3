"""The status page in a real browser: headless Chromium (Debian `chromium`) loads the pages of
calls made on a real livekit-server, with the room observer in the room and the sidecar's traces
sent to a real Jaeger (v2, scripts/build-jaeger.sh). The DOM Chromium built is checked (lanes,
marks, rows in time order, links) and Chromium's console must report no Content-Security-Policy
violation. Screenshots are kept in $AVATAR_MONITOR_ARTIFACTS (default .artifacts/). Chromium
runs inside the e2e network namespace, so it can reach nothing but the test's own servers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.harness import Verdict, register_log
from tests.e2e.jaeger import Jaeger, JaegerUnavailable, jaeger_binary
from tests.support.metrics import MetricsClient, expect, poll_until
from tests.support.participants import AVATAR_IDENTITY, Participant
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar
from tests.support.webhooks import Room, access_token, agent, avatar, signed, user

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("AVATAR_MONITOR_ARTIFACTS", ".artifacts"))
# No first-run, sync, component update or other background traffic; root needs --no-sandbox.
# The console goes to stderr (--enable-logging): a CSP violation is logged there.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--no-default-browser-check", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-default-apps",
                  "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr",
                  "--v=0")
DASHBOARD = "http://grafana.example:3000/d/avatar-calls/avatar-calls?orgId=1"
EVENTS_TOPIC = "avatar-monitor/events"
CALLER = "caller <script>alert(1)</script>"
# Part of the failed call's scenario, not a wait for anything: its steps a second or so apart,
# as in a real call, so that the picture (and docs/status-page.png) shows them apart.
PACE = 1.0


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium not found: run scripts/install-test-deps.sh (Debian chromium)",
                    pytrace=False)
    return found


@pytest.fixture(scope="session")
def jaeger_bin() -> Path:
    """The pinned Jaeger; a missing one fails the test, it never skips it."""
    try:
        return jaeger_binary()
    except JaegerUnavailable as exc:
        pytest.fail(f"no Jaeger binary for the trace-link test: {exc}", pytrace=False)


@pytest.fixture
def jaeger(request: pytest.FixtureRequest, tmp_path: Path, jaeger_bin: Path
           ) -> Iterator[Jaeger]:
    store = Jaeger(jaeger_bin, tmp_path / "jaeger")
    register_log(request, "jaeger", store.log_path)
    store.start()
    yield store
    store.stop()


@pytest.fixture
def sidecar_base_args(request: pytest.FixtureRequest, livekit_port: int) -> list[str]:
    """For a test with a call: the room observer, traces to Jaeger, the page's links."""
    if "call" not in request.fixturenames:
        return []
    store: Jaeger = request.getfixturevalue("jaeger")
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1",
            "--otlp-endpoint", store.otlp_url,
            "--trace-url", store.query_url + "/trace/{trace_id}", "--dashboard-url", DASHBOARD]


async def browse(chromium: str, profile: Path, url: str, screenshot: Path,
                 size: str = "1280,1100") -> str:
    """The page's DOM after Chromium loaded it; a screenshot of it is saved too. Fails on a
    Content-Security-Policy violation in Chromium's console."""
    outputs = []
    for action in ("--dump-dom", f"--screenshot={screenshot}"):
        process = await asyncio.create_subprocess_exec(
            chromium, *CHROMIUM_FLAGS, f"--window-size={size}", f"--user-data-dir={profile}",
            action, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-2000:]
        violations = [line for line in err.decode(errors="replace").splitlines()
                      if "Content Security Policy" in line]
        assert not violations, violations
        outputs.append(out.decode())
    assert screenshot.stat().st_size > 10_000  # a rendered page, not an empty image
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return outputs[0]


async def publish(participant: Participant, topic: str, payload: dict[str, object]) -> None:
    await participant.room.local_participant.publish_data(json.dumps(payload).encode(),
                                                          reliable=True, topic=topic)


def lanes(dom: str) -> list[tuple[str, str]]:
    """(role, identity) of each lane, top to bottom, as Chromium holds them."""
    return re.findall(r'<g class="lane (\w+)" data-identity="([^"]*)"', dom)


def marks(dom: str) -> list[tuple[str, float]]:
    return [(kind, float(at)) for kind, at in
            re.findall(r'<g class="mark \w+" data-kind="(\w+)" data-at="([\d.]+)"', dom)]


def rows(dom: str) -> list[tuple[float, str]]:
    return [(float(at), event) for at, event in
            re.findall(r'<tr data-at="([\d.]+)" data-event="(\w+)"', dom)]


async def jaeger_trace(http: aiohttp.ClientSession, store: Jaeger, trace_id: str) -> dict:
    """The trace from Jaeger's query API, once it holds the call's three spans."""

    async def probe() -> dict:
        async with http.get(f"{store.query_url}/api/traces/{trace_id}") as resp:
            return await resp.json() if resp.status == 200 else {"status": resp.status}

    def complete(body: dict) -> bool:
        spans = (body.get("data") or [{}])[0].get("spans", [])
        return {"avatar.call", "avatar.ringing", "avatar.session"} <= {
            span["operationName"] for span in spans}

    body = await poll_until(probe, complete, f"trace {trace_id} in Jaeger", timeout=20)
    return body["data"][0]


@pytest.mark.sidecar_args("--public-status")
async def test_a_failed_call_drawn_in_the_browser(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar, verdict: Verdict,
        chromium: str, tmp_path: Path, jaeger: Jaeger, http: aiohttp.ClientSession) -> None:
    """User, voice agent and a LemonSlice avatar: the avatar publishes and says bot_ready, the
    agent reports a turn's latency, then an unrecoverable LLM error, and the avatar leaves. The
    page draws it; the trace it links to is in Jaeger, marked as an error."""
    caller = await call.user(CALLER)
    voice = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    await asyncio.sleep(PACE)
    face, _ = await call.avatar()
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                           expect("avatar_time_to_first_track_seconds_count", 1, kind="audio"),
                           expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))
    await publish(face, "lemonslice", {"type": "bot_ready"})
    await metrics.wait_all(expect("avatar_ready_latency_seconds_count", 1))
    await asyncio.sleep(PACE)
    await publish(voice, EVENTS_TOPIC, {"v": 1, "type": "agent_latency", "llm_ttft": 0.42,
                                        "tts_ttfb": 0.18, "e2e": 1.3})
    await metrics.wait_all(expect("avatar_agent_latency_seconds_count", 1, stage="e2e"))
    await asyncio.sleep(2 * PACE)
    await publish(voice, EVENTS_TOPIC, {"v": 1, "type": "pipeline_error", "component": "llm",
                                        "recoverable": False})
    await metrics.wait_all(expect("avatar_pipeline_errors_total", 1, component="llm",
                                  recoverable="false"))
    await asyncio.sleep(PACE)
    await face.leave()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="pipeline_error"))
    await voice.leave()
    await caller.leave()
    await metrics.wait_all(*(expect("avatar_disconnects_total", 1, role=role,
                                    reason="client_initiated") for role in ("user", "agent")))
    body = await verdict(call.room)
    assert body["verdict"] == "pipeline_error", body["findings"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    index = await browse(chromium, tmp_path / "profile", sidecar.url + "/?status=failed",
                         ARTIFACTS / "status-page.png", "1280,700")
    listed = re.findall(r'<tr data-sid="(\w+)" data-status="(\w+)">', index)
    assert listed == [(body["sid"], "failed")]
    assert "pipeline_error</td>" in index

    page = await browse(chromium, tmp_path / "profile", f"{sidecar.url}/calls/{body['sid']}",
                        ARTIFACTS / "status-page-call.png")
    # The top of it (verdict and picture), as docs/status-page.png shows it.
    await browse(chromium, tmp_path / "profile", f"{sidecar.url}/calls/{body['sid']}",
                 ARTIFACTS / "status-page-docs.png", "1200,640")
    assert "<script>alert" not in page and "alert(1)" in page
    assert lanes(page) == [("user", "caller &lt;script&gt;alert(1)&lt;/script&gt;"),
                           ("agent", "voice-agent"), ("avatar", AVATAR_IDENTITY),
                           ("observer", "room observer")]
    seen = marks(page)
    kinds = [kind for kind, _ in seen]
    assert kinds.count("track") == 2 and {"join", "ready", "latency"} <= set(kinds), seen
    error_at = next(at for kind, at in seen if kind == "error")
    flag = re.search(r'<g class="flag failed" data-kind="flag" data-at="([\d.]+)"><title>'
                     r"pipeline_error: ", page)
    assert flag is not None and float(flag.group(1)) == error_at
    stays = re.findall(r'<g class="stay" data-joined="[\d.]+" data-left="([\d.]*)" '
                       r'data-reason="([^"]*)"', page)
    assert len(stays) == 4 and all(left for left, _ in stays[:3]), stays
    assert stays[2][1] == "CLIENT_INITIATED"
    table = rows(page)
    assert [at for at, _ in table] == sorted(at for at, _ in table)
    assert len(table) == len(body["timeline"])
    assert {"call_started", "joined", "avatar_joined", "observed", "track", "avatar_ready",
            "agent_latency", "pipeline_error", "left", "avatar_left", "call_ended"} <= {
        event for _, event in table}
    assert f"room sid <b>{body['sid']}</b>" in page

    # The trace the page names is the call's, in a real trace store.
    link = re.search(r'<a class="trace" rel="noreferrer" href="([^"]+)">([0-9a-f]{32})</a>',
                     page)
    assert link is not None
    href, trace_id = link.groups()
    assert href == f"{jaeger.query_url}/trace/{trace_id}" and trace_id == body["trace_id"]
    trace = await jaeger_trace(http, jaeger, trace_id)
    root = next(s for s in trace["spans"] if s["operationName"] == "avatar.call")
    tags = {tag["key"]: tag["value"] for tag in root["tags"]}
    assert tags["livekit.room.name"] == call.room and tags["livekit.room.sid"] == body["sid"]
    assert tags["otel.status_code"] == "ERROR"
    assert {field["value"] for log in root["logs"] for field in log["fields"]
            if field["key"] == "event"} >= {"participant_joined", "pipeline_error",
                                            "participant_left"}
    assert abs(root["startTime"] - body["started_at"] * 1e6) <= 1
    async with http.get(href) as resp:  # the link itself: Jaeger's UI route answers
        assert resp.status == 200
    dashboard = re.search(r'<a class="dashboard" rel="noreferrer" href="([^"]+)"', page)
    assert dashboard is not None and dashboard.group(1).startswith(DASHBOARD + "&amp;from=")
    print(f"\nstatus page screenshots: {ARTIFACTS / 'status-page.png'}, "
          f"{ARTIFACTS / 'status-page-call.png'}, {ARTIFACTS / 'status-page-docs.png'}; "
          f"trace {trace_id} in Jaeger")


@pytest.mark.sidecar_args("--public-status")
async def test_the_list_shows_healthy_calls_and_the_trace_link_finds_each(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar, verdict: Verdict,
        chromium: str, tmp_path: Path, jaeger: Jaeger, http: aiohttp.ClientSession) -> None:
    """A healthy call is on `/` with its duration and verdict; its page's trace link leads to
    its trace in Jaeger, and the page says the agent's leave after the call's end."""
    caller = await call.user()
    voice = await call.agent()
    face, _ = await call.avatar()
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"))
    await caller.leave()
    await face.leave()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="user_hangup"))
    await voice.leave()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="agent",
                                  reason="client_initiated"))
    body = await verdict(call.room)
    assert body["verdict"] == "healthy"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    index = await browse(chromium, tmp_path / "profile", sidecar.url + "/",
                         ARTIFACTS / "status-page-list.png", "1280,700")
    row = re.search(rf'<tr data-sid="{body["sid"]}" data-status="healthy">(.*?)</tr>', index)
    assert row is not None and ">healthy</td>" in row.group(1)
    assert re.search(r'<td class="at">0:\d\d</td>', row.group(1)), row.group(1)
    page = await browse(chromium, tmp_path / "profile", f"{sidecar.url}/calls/{body['sid']}",
                        ARTIFACTS / "status-page-healthy.png")
    trace_id = re.search(r'class="trace" rel="noreferrer" href="[^"]+/trace/([0-9a-f]{32})"',
                         page)
    assert trace_id is not None
    trace = await jaeger_trace(http, jaeger, trace_id.group(1))
    assert {p["serviceName"] for p in trace["processes"].values()} == {"avatar-monitor"}
    voice_left = next(p["left_at"] for p in body["participants"] if p["role"] == "agent")
    assert voice_left is not None  # left after the call ended, and on the record
    assert "no leave seen" not in page


async def test_hostile_names_stay_text(sidecar: Sidecar, chromium: str, tmp_path: Path,
                                       api_keys: tuple[str, str],
                                       http: aiohttp.ClientSession) -> None:
    """A 10 KB room name and identities with markup, by signed webhooks: Chromium builds no
    element from them, and the page cuts the name."""
    t = float(int(time.time()) - 60)
    room = Room(name="<b>" + "r" * 10240, created_at=t - 1)
    caller = user(t, identity='<script>alert(1)</script>')
    voice = agent(t + 0.5, identity='"><img src=x onerror=alert(2)>')
    face = avatar(t + 2)
    for event in (room.joined(caller), room.joined(voice), room.joined(face),
                  room.left(caller, t + 30), room.left(face, t + 31)):
        body, headers = signed(event, *api_keys)
        async with http.post(sidecar.webhook_url, data=body, headers=headers) as resp:
            assert resp.status == 200
    token = access_token(None, *api_keys)
    page = await browse(chromium, tmp_path / "profile",
                        f"{sidecar.url}/calls/{room.sid}?token={token}",
                        ARTIFACTS / "status-page-hostile.png")
    assert "<script>alert" not in page and "<img src" not in page and "<b>r" not in page
    assert [identity for _, identity in lanes(page)] == [
        "&lt;script&gt;alert(1)&lt;/script&gt;", "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;",
        AVATAR_IDENTITY]
    assert "the room's full name (10243 characters)" in page


async def test_a_token_in_the_address_becomes_a_session_cookie(
        sidecar: Sidecar, chromium: str, tmp_path: Path, api_keys: tuple[str, str]) -> None:
    """Chromium opens `/?token=...`: the sidecar redirects to `/` with the token in an HttpOnly
    cookie, and the page it then shows (authorised by the cookie alone) carries no token."""
    token = access_token(None, *api_keys)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await browse(chromium, tmp_path / "profile", f"{sidecar.url}/?token={token}",
                        ARTIFACTS / "status-page-session.png")
    assert "<h2>Calls</h2>" in page and "token" not in page
    refused = await browse(chromium, tmp_path / "other-profile", f"{sidecar.url}/?token=forged",
                           ARTIFACTS / "status-page-refused.png")
    assert "<h2>Calls</h2>" not in refused and "token does not verify" in refused
