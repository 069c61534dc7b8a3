"""Symptoms of the LemonSlice troubleshooting guide, which every panel and alert answers."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.diagnosis.sections import CONNECT, PIPELINE, ROOM_ERRORS, STARTUP, TIMEOUTS


@dataclass(frozen=True)
class Symptom:
    """One symptom as the guide words it, and the guide section that handles it."""

    text: str
    section: str

    def cite(self) -> str:
        """How descriptions quote the symptom."""
        return f'"{self.text}" (guide: {self.section})'


EMPTY_ROOM = Symptom("Empty room (user sees black screen)", CONNECT)
NO_MEDIA = Symptom("User gets no video or audio, but audio/text input are still active", CONNECT)
DISAPPEARS = Symptom("Avatar disappears", CONNECT)
DELAYED = Symptom("Avatar is delayed in speaking", CONNECT)
FAILS_TO_JOIN = Symptom("Avatar fails to join a call", ROOM_ERRORS)
CRASHED = Symptom("Crashed calls. Avatar leaves the call or audio cuts out.", ROOM_ERRORS)
NO_SPEECH = Symptom("Avatar does not speak", PIPELINE)
SESSION_DIES = Symptom("Session dies unexpectedly", PIPELINE)
NEVER_CONNECTS = Symptom("The call never connects", STARTUP)
SUDDEN_EXIT = Symptom("Avatar suddenly exits a call", TIMEOUTS)
SAME_MINUTES = Symptom("Calls suddenly end after the same number of minutes", TIMEOUTS)
STALE_CALLS = Symptom("stale calls and runaway billing", TIMEOUTS)

ALL: tuple[Symptom, ...] = (
    EMPTY_ROOM,
    NO_MEDIA,
    DISAPPEARS,
    DELAYED,
    FAILS_TO_JOIN,
    CRASHED,
    NO_SPEECH,
    SESSION_DIES,
    NEVER_CONNECTS,
    SUDDEN_EXIT,
    SAME_MINUTES,
    STALE_CALLS,
)


def answers(*symptoms: Symptom) -> str:
    """The sentence that opens every description: which symptoms it answers."""
    if not symptoms:
        raise ValueError("every panel and alert must answer at least one symptom of the guide")
    return "Answers " + "; ".join(s.cite() for s in symptoms) + "."
