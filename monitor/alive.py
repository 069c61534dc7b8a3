"""Where the previous process stopped: the server time it last ran, kept in a small file.

After a restart the new process cannot tell a call its predecessor counted from one that started
while no process ran (an outage). With `--state-file` the deadline loop writes the server's time
there several times a second (and once more on a clean stop); the next process reads it at start
and counts every transition after it: calls that started, deadlines that passed and calls that
ended during the downtime, as far as LiveKit still shows them (a RoomService listing, or webhooks
its retries deliver late). Without the file it counts from its own start. A crash loses at most
the last write interval, in which a transition may be counted by both processes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class AliveFile:
    """Reads and writes the last server time a process ran (unix seconds, as text)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._failed = False

    def read(self) -> float | None:
        """The time the previous process last noted, or None (no file, or unreadable)."""
        try:
            value = float(self.path.read_text().strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("state file %s unreadable, counting from this start: %s", self.path, exc)
            return None
        return value if value > 0 else None

    def write(self, server_time: float) -> None:
        """Note `server_time`; atomic (a reader sees the old or the new value, never half)."""
        try:
            self._tmp.write_text(f"{server_time:.3f}\n")
            os.replace(self._tmp, self.path)
        except OSError as exc:
            if not self._failed:  # once, not five times a second
                log.warning("cannot write the state file %s: %s", self.path, exc)
            self._failed = True
        else:
            self._failed = False
