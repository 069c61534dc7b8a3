"""`avatar-monitor simulate`: every simulated call gets the verdict it is sent for, from a real
sidecar over HTTP, with nothing rejected."""

from __future__ import annotations

import pytest

from monitor.cli import main
from monitor.simulate import SCENARIOS, send
from tests.support.served import StartMonitor
from tests.support.webhooks import KEY, SECRET, access_token


async def test_every_simulated_call_gets_its_verdict(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor()
    made = await send(sidecar.url, KEY, SECRET)
    assert {call.kind for call in made} == set(SCENARIOS)
    headers = {"Authorization": f"Bearer {access_token()}"}
    seen = {}
    for call in made:
        async with sidecar.http.get(f"{sidecar.url}/v1/calls/{call.name}",
                                    headers=headers) as resp:
            assert resp.status == 200, call.kind
            body = await resp.json()
        seen[call.kind] = body["verdict"]
        assert body["live"] is False, call.kind
    assert seen == {call.kind: call.expected for call in made}
    assert await sidecar.value("avatar_calls_started_total") == len(made)
    for reason in ("unauthorized", "malformed", "duplicate"):
        assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason=reason) == 0


async def test_a_sidecar_with_another_key_pair_is_reported(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor()
    with pytest.raises(RuntimeError, match="answered 401"):
        await send(sidecar.url, KEY, "another-secret-that-is-long-enough-for-hs256")


def test_an_unreachable_sidecar_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err.startswith("avatar-monitor simulate: error:")
