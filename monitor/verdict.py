"""A call's verdict, as data: its status, its name and its findings. The rules that make it are
monitor.diagnosis.verdicts; the history keeps it and the call-record log writes it."""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("failed", "warning", "healthy", "in_progress")


@dataclass(slots=True, frozen=True)
class Finding:
    rule: str
    severity: str
    section: str
    evidence: str
    next_step: str


@dataclass(slots=True, frozen=True)
class Verdict:
    status: str  # one of STATUSES
    name: str  # the first finding's rule, or healthy / in_progress
    findings: tuple[Finding, ...]
