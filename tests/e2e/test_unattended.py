"""The bill on the real livekit-server: an avatar's time in its room with no user is counted from
the server's timestamps, before the first user comes and after the last one leaves."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Verdict
from tests.support.metrics import MetricsClient, expect
from tests.support.participants import AVATAR_IDENTITY
from tests.support.scenario import CallDriver

pytestmark = pytest.mark.e2e


def left_at(body: dict, identity: str) -> float:
    times = [p["left_at"] for p in body["participants"] if p["identity"] == identity]
    assert times and times[-1] is not None, body["participants"]
    return float(times[-1])


@pytest.mark.sidecar_args("--unattended-after", "2")
async def test_an_avatar_left_alone_is_billed_and_warned_about(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """The user hangs up; agent and avatar stay until livekit-server closes the room on them
    (its departure timeout, 3 s here): those seconds are the bill, to the second of the
    server's own leave times."""
    user = await call.user()
    await call.agent()
    await call.avatar()
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                           expect("avatar_unattended_now", 0))
    await user.leave()
    await metrics.wait_all(expect("avatar_unattended_now", 1))
    await metrics.wait_all(expect("avatar_calls_in_progress", 0, state="active"),
                           expect("avatar_unattended_now", 0),
                           expect("avatar_unattended_longest_seconds", 0),
                           expect("avatar_departures_total", 1, cause="user_hangup"))
    body = await verdict(call.room)
    alone = left_at(body, AVATAR_IDENTITY) - left_at(body, "user")
    assert alone >= 2, body["participants"]
    snapshot = await metrics.scrape()
    assert snapshot.value("avatar_unattended_seconds_total") == alone
    assert (body["status"], body["verdict"]) == ("warning", "unattended"), body["findings"]
    assert f"the avatar stayed 0 min {alone:02.0f} s after the user left" in \
        body["findings"][0]["evidence"]


async def test_an_avatar_before_the_first_user_is_billed_until_the_user_comes(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """Agent and avatar are dispatched before the user: the wait is billed; the call after
    the user came is not."""
    await call.agent()
    await call.avatar()
    await metrics.wait_all(expect("avatar_unattended_now", 1))
    await call.user()
    await metrics.wait_all(expect("avatar_unattended_now", 0),
                           expect("avatar_calls_in_progress", 1, state="active"))
    snapshot = await metrics.scrape()
    waited = snapshot.value("avatar_unattended_seconds_total")
    for who in reversed(call.participants):  # the avatar, the agent, then the user
        await who.leave()
    body = await verdict(call.room)
    joins = {p["identity"]: p["joined_at"] for p in body["participants"]}
    assert waited == pytest.approx(joins["user"] - joins[AVATAR_IDENTITY], abs=1e-3)
    assert waited > 0
    snapshot = await metrics.scrape()
    assert snapshot.value("avatar_unattended_seconds_total") == waited  # nothing after
