"""The status page in a real browser: headless Chromium (Debian `chromium`) loads `/` after a
failed call on a real livekit-server and shows the call with its verdict; the call's own page
shows the evidence and the timeline. A screenshot of each is kept in $AVATAR_MONITOR_ARTIFACTS
(default .artifacts/). Chromium runs inside the e2e network namespace, so it can reach nothing
but the test's own servers."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import Verdict
from tests.e2e.metrics import MetricsClient, expect
from tests.e2e.scenario import CallDriver
from tests.e2e.sidecar import Sidecar
from tests.webhooks import access_token

pytestmark = pytest.mark.e2e

JOIN_TIMEOUT = 2.0
ARTIFACTS = Path(os.environ.get("AVATAR_MONITOR_ARTIFACTS", ".artifacts"))
# No first-run, sync, component update or other background traffic; root needs --no-sandbox.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--no-default-browser-check", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-default-apps",
                  "--disable-extensions", "--hide-scrollbars", "--window-size=1280,900")


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium not found: run scripts/install-test-deps.sh (Debian chromium)",
                    pytrace=False)
    return found


async def browse(chromium: str, profile: Path, url: str, screenshot: Path) -> str:
    """The page's DOM after Chromium loaded it; a screenshot of it is saved too."""
    outputs = []
    for action in ("--dump-dom", f"--screenshot={screenshot}"):
        process = await asyncio.create_subprocess_exec(
            chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", action, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-2000:]
        outputs.append(out.decode())
    assert screenshot.stat().st_size > 10_000  # a rendered page, not an empty image
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return outputs[0]


@pytest.mark.sidecar_args("--public-status", "--avatar-join-timeout", str(JOIN_TIMEOUT))
async def test_the_page_shows_a_failed_call_and_its_verdict(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar, verdict: Verdict,
        chromium: str, tmp_path: Path) -> None:
    user = await call.user()
    await call.agent()
    await metrics.wait_all(expect("avatar_startup_failures_total", 1, cause="join_timeout"),
                           timeout=JOIN_TIMEOUT + 10)
    await user.leave()
    body = await verdict(call.room)
    assert body["verdict"] == "avatar_never_joined"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    index = await browse(chromium, tmp_path / "profile", sidecar.url + "/",
                         ARTIFACTS / "status-page.png")
    assert "Recent failures" in index
    failures = index.split("Recent failures", 1)[1]
    assert f">{call.room}</a>" in failures
    assert "avatar_never_joined" in failures
    assert f"avatar never joined within {JOIN_TIMEOUT:g} s" in failures

    page = await browse(chromium, tmp_path / "profile", f"{sidecar.url}/calls/{call.room}",
                        ARTIFACTS / "status-page-call.png")
    assert "Verdict:" in page and "avatar_never_joined" in page
    assert "Handle startup failures" in page
    for event in ("call_started", "startup_failure", "call_ended"):
        assert f"<td>{event}</td>" in page, event
    print(f"\nstatus page screenshots: {ARTIFACTS / 'status-page.png'}, "
          f"{ARTIFACTS / 'status-page-call.png'}")


async def test_a_token_in_the_address_becomes_a_session_cookie(
        sidecar: Sidecar, chromium: str, tmp_path: Path, api_keys: tuple[str, str]) -> None:
    """Chromium opens `/?token=...`: the sidecar redirects to `/` with the token in an HttpOnly
    cookie, and the page it then shows (authorised by the cookie alone) carries no token."""
    token = access_token(None, *api_keys)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await browse(chromium, tmp_path / "profile", f"{sidecar.url}/?token={token}",
                        ARTIFACTS / "status-page-session.png")
    assert "Live calls" in page and "token" not in page
    refused = await browse(chromium, tmp_path / "other-profile", f"{sidecar.url}/?token=forged",
                           ARTIFACTS / "status-page-refused.png")
    assert "Live calls" not in refused and "token does not verify" in refused
