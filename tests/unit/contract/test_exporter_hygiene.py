"""Exporter hygiene: the build's version, the standard process and GC families on the private
registry, and custom collectors that describe themselves without collecting."""

from __future__ import annotations

from importlib import metadata

from prometheus_client import CollectorRegistry

from monitor.sinks.call_gauges import CallStateCollector
from monitor.sinks.session_lengths import RepeatedLengthCollector
from tests.support.served import RunningMonitor


async def test_build_info_names_the_installed_version(sidecar: RunningMonitor) -> None:
    version = metadata.version("avatar-monitor")
    assert await sidecar.value("avatar_monitor_build_info", version=version) == 1.0
    text = await sidecar.scrape()
    assert text.count("avatar_monitor_build_info{") == 1


async def test_process_and_gc_families_are_exported(sidecar: RunningMonitor) -> None:
    assert (await sidecar.value("process_resident_memory_bytes") or 0) > 1e6
    assert (await sidecar.value("process_cpu_seconds_total") or 0) > 0
    assert (await sidecar.value("process_open_fds") or 0) > 0
    for generation in ("0", "1", "2"):
        assert await sidecar.value("python_gc_collections_total",
                                   generation=generation) is not None


class Untouchable:
    """A tracker or detector that fails if read: describe() must not read it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"describe() read .{name}")


def test_custom_collectors_describe_without_collecting() -> None:
    registry = CollectorRegistry()
    for collector in (CallStateCollector(Untouchable()),  # type: ignore[arg-type]
                      RepeatedLengthCollector(Untouchable())):  # type: ignore[arg-type]
        names = [m.name for m in collector.describe()]
        assert names and all(n.startswith("avatar_") for n in names)
        registry.register(collector)  # registration uses describe(): no read
