"""Which replica owns a room: `--shard I/N` splits rooms by a CRC-32 of the room name, stable
across processes and restarts (unlike hash()), so N replicas each count their own rooms once."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    def owner(self, room_name: str) -> int:
        """The shard that owns this room."""
        return zlib.crc32(room_name.encode()) % self.count if self.count > 1 else 0

    def owns(self, room_name: str) -> bool:
        return self.count == 1 or self.owner(room_name) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# One replica: every room is its own.
EVERY_ROOM = Shard()


def url_of(template: str, shard: int) -> str:
    """The base URL of a shard's replica from --shard-url ("" when there is no template)."""
    return template.replace("{shard}", str(shard)).rstrip("/") if template else ""


def in_shard(room_name: str, shard: int, shards: int) -> bool:
    """Whether shard `shard` of `shards` owns the room."""
    return Shard(shard, shards).owns(room_name)
