"""/metrics from a cache: each metric family's text is rendered again only when it changed.

The output does not grow with calls (labels are closed sets), so a scrape renders the same few
hundred series over and over, most of them unchanged since the last scrape. `CachedExposition`
collects the registry as prometheus_client does, compares each family with what it was at the
last scrape (its samples, and the bits of their values, so 0.0 and -0.0 differ as their text
does) and formats only the families that differ, with the encoder `choose_encoder` picked. The
result is byte for byte what the encoder renders from the whole registry: both the Prometheus
text and OpenMetrics formats render families independently of one another, then a trailer.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

Encoder = Callable[[Collector], bytes]


class _Families(Collector):
    """Given metric families, as a collector an encoder renders."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass(slots=True)
class _Rendered:
    """One family as last rendered: what it was made from, and its text."""

    heading: tuple[str, str, str]  # documentation, type, unit
    samples: list[Sample]
    marks: tuple[bytes, tuple[str, ...]] | None
    text: bytes


def _marks(samples: Sequence[Sample]) -> tuple[bytes, tuple[str, ...]] | None:
    """What == on samples misses of their text: the bits of their values (0.0 == -0.0, the
    text says "-0.0") and how their timestamps read (1 == 1.0; OpenMetrics writes them as
    they are). None when a value is not a number (a native histogram's): always rendered."""
    values = []
    stamps = []
    for sample in samples:
        values.append(sample.value)
        if sample.timestamp is not None:
            stamps.append(repr(sample.timestamp))
        if sample.exemplar is not None:
            stamps.append(repr(sample.exemplar.timestamp))
    try:
        return array("d", values).tobytes(), tuple(stamps)
    except TypeError:
        return None


class _FormatCache:
    """The rendered families of one format (encoder and its options), by family name."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self._trailer = encoder(_Families(()))  # what follows the families ("# EOF" or none)
        self._families: dict[str, _Rendered] = {}

    def render(self, families: Iterable[Metric]) -> bytes:
        parts = []
        seen = set()
        for family in families:
            parts.append(self._text(family))
            seen.add(family.name)
        for gone in self._families.keys() - seen:  # a collector unregistered, or silent
            del self._families[gone]
        parts.append(self._trailer)
        return b"".join(parts)

    def _text(self, family: Metric) -> bytes:
        heading = (family.documentation, family.type, family.unit)
        samples = family.samples
        marks = _marks(samples)
        cached = self._families.get(family.name)
        if (cached is not None and marks is not None and cached.marks == marks
                and cached.samples == samples and cached.heading == heading):
            return cached.text
        text = self._encoder(_Families((family,)))
        text = text[:len(text) - len(self._trailer)]
        self._families[family.name] = _Rendered(heading, list(samples), marks, text)
        return text


def _format_key(encoder: Encoder) -> Any:
    """What tells formats apart: the encoder function and the options `choose_encoder` bound."""
    if isinstance(encoder, partial):
        return encoder.func, encoder.args, tuple(sorted(encoder.keywords.items()))
    return encoder


class CachedExposition:
    """The registry's exposition in any format `choose_encoder` picks, formatting only the
    families that changed since the last scrape in that format."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry
        self._formats: dict[Any, _FormatCache] = {}

    def render(self, encoder: Encoder) -> bytes:
        """What `encoder(registry)` returns, from the cache where families did not change."""
        key = _format_key(encoder)
        cache = self._formats.get(key)
        if cache is None:
            cache = self._formats[key] = _FormatCache(encoder)
        return cache.render(self._registry.collect())
