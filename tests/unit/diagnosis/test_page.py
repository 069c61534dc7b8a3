"""The call page: its picture (lanes, marks, the finding at its moment), its rows in time order,
its facts and links (trace, dashboard), escaping; the list of calls and its filters. A real
browser draws them in tests/e2e/test_status_page.py."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

from livekit.protocol import models, webhook
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.calls.inputs import AgentLatency, AvatarReady, PipelineError
from monitor.diagnosis.page import duration
from monitor.diagnosis.timeline import MOMENTS, offset
from monitor.diagnosis.verdicts import RULE_BY_NAME
from monitor.reports.signals import ReportedEvent
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, agent, avatar, user

R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO


def test_every_rules_finding_has_its_moment() -> None:
    assert set(MOMENTS) == set(RULE_BY_NAME)


def test_offsets_and_durations() -> None:
    assert [offset(s) for s in (0, 59.6, -5, 3725)] == ["+0:00", "+1:00", "-0:05", "+1:02:05"]
    assert [duration(s) for s in (0, 61, 3725)] == ["0:00", "1:01", "1:02:05"]


# -- over HTTP ---------------------------------------------------------------------------------

async def page(sidecar: RunningMonitor, path: str) -> tuple[int, str]:
    async with sidecar.http.get(sidecar.url + path) as resp:
        return resp.status, await resp.text()


async def send(sidecar: RunningMonitor, *events: webhook.WebhookEvent) -> None:
    for event in events:
        status, reply = await sidecar.send(event)
        assert status == 200, reply


def report(sidecar: RunningMonitor, room: Room, signal: object, at: float) -> None:
    sidecar.monitor.bridge.accept("http", ReportedEvent(signal, None, at),  # type: ignore[arg-type]
                                  time.time(), room.name)


async def failed_call(sidecar: RunningMonitor, t: float, name: str = "support-call-42",
                      identity: str = "alice") -> Room:
    """User, voice agent and avatar; the LLM dies at +41 s, the avatar leaves at +44 s."""
    room = Room(name=name, created_at=t - 1)
    caller, voice, face = user(t, identity=identity), agent(t + 0.3), avatar(t + 2.5)
    await send(sidecar, room.joined(caller), room.joined(voice), room.joined(face),
               room.track(face, AUDIO, t + 3), room.track(face, VIDEO, t + 3.4))
    sidecar.monitor.tracker.observing(room.sid, t + 2.5)
    report(sidecar, room, AvatarReady(), t + 4.1)
    sidecar.monitor.tracker.avatar_speaking(room.sid, True, t + 5)
    sidecar.monitor.tracker.avatar_speaking(room.sid, False, t + 9)
    report(sidecar, room, AgentLatency((("llm_ttft", 0.41), ("e2e", 1.12))), t + 12)
    report(sidecar, room, PipelineError("llm", False), t + 41)
    await send(sidecar, room.left(face, t + 44), room.left(voice, t + 44.5),
               room.left(caller, t + 50))
    return room


def _tags(html: str, cls: str) -> list[str]:
    return re.findall(rf'<g class="{cls}[^"]*"[^>]*>', html)


async def test_the_call_page_draws_lanes_marks_and_the_finding(
        start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(
        public_status=True, span_exporter=InMemorySpanExporter(),
        trace_url="http://jaeger:16686/trace/{trace_id}",
        dashboard_url="http://grafana:3000/d/avatar?orgId=1&from=now-1h")
    t = float(int(time.time()) - 100)
    room = await failed_call(sidecar, t)
    status, html = await page(sidecar, f"/calls/{room.sid}")
    assert status == 200
    assert "style=" not in html  # the policy allows the hashed <style> element only
    lanes = re.findall(r'<g class="lane (\w+)" data-identity="([^"]*)"', html)
    assert lanes == [("user", "alice"), ("agent", "agent-1"),
                     ("avatar", "lemonslice-avatar-agent"), ("observer", "room observer")]
    marks = re.findall(r'<g class="mark (\w+)" data-kind="\w+" data-at="([\d.]+)"', html)
    assert ("ready", f"{t + 4.1:.3f}") in marks and ("error", f"{t + 41:.3f}") in marks
    assert {kind for kind, _ in marks} >= {"track", "ready", "speech", "latency", "error"}
    assert re.search(rf'<g class="flag failed" data-kind="flag" data-at="{t + 41:.3f}">'
                     r"<title>pipeline_error: ", html)
    stays = re.findall(r'data-left="([\d.]*)" data-reason="([^"]*)"', html)
    assert (f"{t + 50:.3f}", "CLIENT_INITIATED") in stays  # the user, after the call's end
    rows = [float(at) for at in re.findall(r'<tr data-at="([\d.]+)"', html)]
    assert rows == sorted(rows) and len(rows) == len(sidecar.monitor.status.records
                                                     .latest(room.name).entries)  # type: ignore[union-attr]
    record = sidecar.monitor.status.records.latest(room.name)
    assert record is not None and re.fullmatch(r"[0-9a-f]{32}", record.trace_id)
    assert f'href="http://jaeger:16686/trace/{record.trace_id}"' in html
    dashboard = re.search(r'class="dashboard" rel="noreferrer" href="([^"]+)"', html)
    assert dashboard is not None
    query = parse_qs(urlsplit(dashboard.group(1).replace("&amp;", "&")).query)
    assert query == {"orgId": ["1"], "from": [str(int((t - 60) * 1000))],
                     "to": [str(int((t + 44 + 60) * 1000))]}
    assert "room sid <b>" + room.sid in html and "duration <b>0:44</b>" in html


async def test_the_picture_escapes_names_and_cuts_a_long_room(
        start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(public_status=True)
    t = float(int(time.time()) - 100)
    long_name = "r" * 10240
    room = await failed_call(sidecar, t, name=long_name,
                             identity="<script>alert(1)</script>")
    status, html = await page(sidecar, f"/calls/{room.sid}")
    assert status == 200 and "<script>alert" not in html
    assert 'data-identity="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert html.count(long_name) == 3  # the title, the full name's <details>, the JSON link
    status, index = await page(sidecar, "/")
    assert status == 200 and long_name not in index and "<script>alert" not in index
    assert f'href="/calls/{room.sid}"' in index
    status, html = await page(sidecar, "/calls/%3Cscript%3E")
    assert status == 404 and "&lt;script&gt;" in html


async def test_the_list_shows_every_call_with_filters(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(public_status=True)
    t = float(int(time.time()) - 200)
    failed = await failed_call(sidecar, t)
    healthy = Room(name="healthy-call", created_at=t + 59)
    caller, face = user(t + 60), avatar(t + 61)
    await send(sidecar, healthy.joined(caller), healthy.joined(face),
               healthy.track(face, AUDIO, t + 62), healthy.track(face, VIDEO, t + 62),
               healthy.left(caller, t + 120), healthy.left(face, t + 120.5, R.CLIENT_INITIATED))
    live = Room(name="live-call", created_at=t + 150)
    await send(sidecar, live.joined(user(t + 150)))

    def listed_rooms(html: str) -> list[tuple[str, str]]:
        return re.findall(r'<tr data-sid="(\w+)" data-status="(\w+)">', html)

    status, html = await page(sidecar, "/")
    assert listed_rooms(html) == [(live.sid, "in_progress"), (healthy.sid, "healthy"),
                                  (failed.sid, "failed")]
    assert "1:00</td>" in html and "so far</td>" in html
    assert '<a href="/?verdict=pipeline_error">pipeline_error</a>' in html
    assert listed_rooms((await page(sidecar, "/?status=healthy"))[1]) == [
        (healthy.sid, "healthy")]
    assert listed_rooms((await page(sidecar, "/?state=finished&verdict=pipeline_error"))[1]) \
        == [(failed.sid, "failed")]
    assert listed_rooms((await page(sidecar, "/?status=healthy&verdict=pipeline_error"))[1]) \
        == []
    # An unknown filter value is ignored, not an error.
    assert len(listed_rooms((await page(sidecar, "/?status=<x>&verdict=nope"))[1])) == 3
    # A call's page by room name shows the room's newest call.
    status, html = await page(sidecar, "/calls/healthy-call")
    assert status == 200 and healthy.sid in html


async def test_the_join_deadline_and_a_media_gap_are_drawn(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(public_status=True, avatar_join_timeout=10.0,
                                  interruption_grace=2.0)
    t = float(int(time.time()) - 100)
    lonely = Room(name="nobody-came", created_at=t - 1)
    caller = user(t + 0.25)
    await send(sidecar, lonely.joined(caller), lonely.left(caller, t + 20))
    status, html = await page(sidecar, f"/calls/{lonely.sid}")
    assert status == 200
    assert f'<g class="deadline missed" data-kind="deadline" data-at="{t + 10.25:.3f}">' in html
    assert f'<g class="flag failed" data-kind="flag" data-at="{t + 10.25:.3f}">' \
        "<title>avatar_never_joined: " in html

    gappy = Room(name="gappy", created_at=t - 1)
    caller, face = user(t), avatar(t + 1)
    await send(sidecar, gappy.joined(caller), gappy.joined(face),
               gappy.track(face, AUDIO, t + 1.5), gappy.track(face, VIDEO, t + 1.5),
               gappy.untrack(face, AUDIO, t + 20), gappy.track(face, AUDIO, t + 30),
               gappy.left(caller, t + 60), gappy.left(face, t + 61))
    status, html = await page(sidecar, f"/calls/{gappy.sid}")
    gaps = re.findall(r'<rect class="gap" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', html)
    assert len(gaps) == 1, html
    assert '<g class="flag warning" data-kind="flag"' in html  # media_interrupted, at the gap
