"""Finished calls, once: each call's final record and verdict handed to the history and the
call-record log when the call is done with, i.e. when its linger is over (late webhooks have
been absorbed), when it is evicted, or when the sidecar stops."""

from __future__ import annotations

import logging
from collections.abc import Callable

from monitor.calls.listener import CallListener
from monitor.calls.model import Call
from monitor.sinks.records import CallRecord, CallRecords
from monitor.verdict import Verdict

log = logging.getLogger(__name__)

# What takes a finished call: its record, verdict and trace id (32 hex digits, or None).
Consumer = Callable[[CallRecord, Verdict, str | None], None]


class FinishedCalls(CallListener):
    """Follows CallRecords (it must come after it in the listeners): holds each ended call's
    record until the tracker forgets the call, then gives it to every consumer."""

    def __init__(self, records: CallRecords, verdict: Callable[[CallRecord], Verdict],
                 consumers: list[Consumer], trace_ids: Callable[[str], int] | None = None
                 ) -> None:
        self._records = records
        self._verdict = verdict
        self.consumers = consumers
        self._trace_ids = trace_ids
        self._traces: dict[str, str] = {}  # room sid -> trace id, for tracked calls
        self._pending: dict[str, CallRecord] = {}  # lingering calls, by room sid

    def call_started(self, call: Call) -> None:
        trace = self._trace_ids(call.room_sid) if self._trace_ids is not None else 0
        if trace:
            self._traces[call.room_sid] = f"{trace:032x}"

    def call_ended(self, call: Call, at: float) -> None:
        record = self._records.finished.get(call.room_sid)
        if record is not None:
            self._pending[call.room_sid] = record
        else:
            self._traces.pop(call.room_sid, None)

    def call_forgotten(self, call: Call) -> None:
        record = self._pending.pop(call.room_sid, None)
        if record is not None:
            self._finish(call.room_sid, record)

    def call_evicted(self, call: Call) -> None:
        record = self._records.finished.get(call.room_sid)
        if record is not None and record.started_at == (call.started_at or 0.0):
            self._finish(call.room_sid, record)
        else:
            self._traces.pop(call.room_sid, None)

    def flush(self) -> None:
        """The sidecar stops: the calls still lingering are finished now."""
        pending, self._pending = self._pending, {}
        for sid, record in pending.items():
            self._finish(sid, record)

    def _finish(self, sid: str, record: CallRecord) -> None:
        verdict = self._verdict(record)
        trace = self._traces.pop(sid, None)
        for consumer in self.consumers:
            try:
                consumer(record, verdict, trace)
            except Exception:  # one broken consumer must not stop the others
                log.exception("a finished call's consumer failed")
