"""Span export: a bounded queue drained by one thread into an OTLP exporter.

Export never blocks webhook intake: a full queue drops the span, a failed export drops the
batch, and both are counted. (The SDK's BatchSpanProcessor drops too, but does not say how many.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from monitor.limits import OTLP_PROTOCOLS

log = logging.getLogger(__name__)

OnDrop = Callable[[str, int], None]


class BoundedSpanProcessor(SpanProcessor):
    """Queues ended spans (at most `max_queue`) and exports them in batches from a thread."""

    def __init__(self, exporter: SpanExporter, on_drop: OnDrop,
                 on_export: Callable[[int], None] = lambda n: None, max_queue: int = 2048,
                 batch_size: int = 512, interval: float = 1.0) -> None:
        self._exporter = exporter
        self._on_drop = on_drop
        self._on_export = on_export
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval = interval
        self._queue: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if len(self._queue) >= self._max_queue:
                full = True
            else:
                full = False
                self._queue.append(span)
                self._idle.clear()
        if full:
            self._on_drop("queue_full", 1)
        elif len(self._queue) >= self._batch_size:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = [self._queue.popleft()
                         for _ in range(min(self._batch_size, len(self._queue)))]
                if not batch:
                    self._idle.set()
                    return
            try:
                result = self._exporter.export(batch)
            except Exception:
                log.exception("span export raised")
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                self._on_export(len(batch))
            else:
                self._on_drop("export_failed", len(batch))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._wake.set()
        return self._idle.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._exporter.shutdown()


def otlp_exporter(endpoint: str, protocol: str, timeout: float = 5.0) -> SpanExporter:
    """An OTLP span exporter; `endpoint` is the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, timeout=timeout)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=timeout)
    raise ValueError(f"unsupported OTLP protocol {protocol!r}; use one of {OTLP_PROTOCOLS}")


def otlp_log_exporter(endpoint: str, protocol: str, timeout: float = 5.0) -> LogRecordExporter:
    """An OTLP log exporter (for the call records), to the same collector as the spans."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(endpoint=endpoint, timeout=timeout)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (
            OTLPLogExporter as HttpLogExporter,
        )

        return HttpLogExporter(endpoint=endpoint.rstrip("/") + "/v1/logs", timeout=timeout)
    raise ValueError(f"unsupported OTLP protocol {protocol!r}; use one of {OTLP_PROTOCOLS}")
