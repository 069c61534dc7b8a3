"""End-to-end fixtures: a real livekit-server and the sidecar under test, in a private network
namespace (see tests/support/netns.py), with their logs attached to any failing test's report."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from livekit import api

from tests.e2e.harness import LOGS, Verdict, register_log
from tests.support import procs
from tests.support.livekit_server import BinaryUnavailable, LiveKitServer, server_binary
from tests.support.metrics import MetricsClient, poll_until
from tests.support.netns import NetnsError, private_network
from tests.support.participants import Server
from tests.support.ports import free_port
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar
from tests.support.webhooks import access_token


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sidecar_args(*args): extra `avatar-monitor serve` arguments for the test")
    config.addinivalue_line(
        "markers", "sidecar_prefix(*argv): a command the sidecar runs under, e.g. faketime")
    config.addinivalue_line(
        "markers", "livekit_access(observer=True): the sidecar gets --livekit-url (modules "
        "that read it)")
    config.addinivalue_line(
        "markers", "sidecar_alone: the sidecar without --livekit-url, so without the room "
        "observer (modules whose sidecars have it by default)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Attach the livekit-server and sidecar logs to the report of a failed test."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        for name, path in item.stash.get(LOGS, []):
            report.sections.append((f"{name} log ({path})", procs.tail(path)))


@pytest.fixture(scope="session")
def livekit_server_bin() -> Path:
    """The pinned livekit-server; a missing one fails every e2e test, it never skips them."""
    try:
        return server_binary()
    except BinaryUnavailable as exc:
        pytest.fail(f"no livekit-server binary for the end-to-end tests: {exc}", pytrace=False)


@pytest.fixture(scope="package", autouse=True)
def private_network_namespace(livekit_server_bin: Path) -> Iterator[str]:
    """Everything the e2e tests start runs in a network namespace of its own."""
    try:
        with private_network() as namespace:
            yield namespace
    except NetnsError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def api_keys() -> tuple[str, str]:
    """A fresh key pair per test (livekit-server wants secrets of 32 characters or more)."""
    return f"APIe2e{secrets.token_hex(4)}", secrets.token_urlsafe(32)


@pytest.fixture
def livekit_port() -> int:
    """Chosen before anything starts, so the sidecar's observer can be pointed at the server."""
    return free_port()


@pytest.fixture
def sidecar_base_args() -> list[str]:
    """Arguments every sidecar of a test module gets; a module overrides this fixture."""
    return []


@pytest.fixture
def sidecar(request: pytest.FixtureRequest, tmp_path: Path, api_keys: tuple[str, str],
            sidecar_base_args: list[str]) -> Iterator[Sidecar]:
    """avatar-monitor under test; `@pytest.mark.sidecar_args(...)` adds CLI arguments."""
    marker = request.node.get_closest_marker("sidecar_args")
    extra = [str(a) for a in marker.args] if marker else []
    prefix = request.node.get_closest_marker("sidecar_prefix")
    proc = Sidecar(tmp_path / "sidecar", *api_keys, extra_args=[*sidecar_base_args, *extra],
                   prefix=[str(a) for a in prefix.args] if prefix else [])
    register_log(request, "avatar-monitor", proc.log_path)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def departure_timeout() -> int:
    """Seconds livekit-server keeps a room once only agents are left (3: tests move on fast);
    a module overrides this fixture."""
    return 3


@pytest.fixture
def livekit(request: pytest.FixtureRequest, tmp_path: Path, livekit_server_bin: Path,
            api_keys: tuple[str, str], sidecar: Sidecar, livekit_port: int,
            departure_timeout: int) -> Iterator[LiveKitServer]:
    """livekit-server whose webhooks go to the sidecar under test."""
    server = LiveKitServer(livekit_server_bin, tmp_path / "livekit", *api_keys,
                           webhook_urls=[sidecar.webhook_url], port=livekit_port,
                           departure_timeout=departure_timeout)
    register_log(request, "livekit-server", server.log_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(livekit: LiveKitServer) -> Server:
    return Server(livekit.url, livekit.api_key, livekit.api_secret)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def metrics(http: aiohttp.ClientSession, sidecar: Sidecar) -> MetricsClient:
    return MetricsClient(http, sidecar.url)


@pytest.fixture
async def room_service(livekit: LiveKitServer) -> AsyncIterator[api.LiveKitAPI]:
    lkapi = api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret)
    yield lkapi
    await lkapi.aclose()


@pytest.fixture
def room_name() -> str:
    return f"call-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def call(server: Server, room_name: str) -> AsyncIterator[CallDriver]:
    driver = CallDriver(server, room_name)
    yield driver
    await driver.close()


@pytest.fixture
def verdict(http: aiohttp.ClientSession, sidecar: Sidecar, api_keys: tuple[str, str]
            ) -> Verdict:
    """The sidecar's diagnosis of a room's call (GET /v1/calls/{room}), waiting until the call
    has finished."""

    async def get(room: str) -> dict:
        token = access_token(room, *api_keys)

        async def probe() -> dict:
            async with http.get(f"{sidecar.url}/v1/calls/{room}",
                                headers={"Authorization": f"Bearer {token}"}) as resp:
                return await resp.json()

        return await poll_until(probe, lambda body: body.get("live") is False,
                                f"the call in {room} finished")

    return get
