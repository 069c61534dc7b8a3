"""The cost of another shard's webhook: what a replica spends on a webhook for a room it does
not own (verify the signature, parse, the shard check, drop), against a webhook it counts (the
same, plus de-duplication and the tracker), in one process and one run.

    python -m benchmarks.shard_drop [--events 20000]

Prints one line: JSON with microseconds of CPU per webhook for each path (median of 5 rounds),
then the summary table (benchmarks/summary.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from livekit.protocol import webhook

from benchmarks import machine
from benchmarks.summary import Figure, print_summary
from monitor.app import build_monitor
from monitor.config import Config
from monitor.intake.dedup import RecentIds
from monitor.intake.events import parse_event
from monitor.intake.verify import WebhookVerifier
from monitor.shard import Shard
from tests.support.webhooks import KEY, SECRET, Room, signed, user


def bodies(count: int, shard: Shard, own: bool) -> list[tuple[bytes, str]]:
    """Signed participant_joined webhooks, each of a room that `shard` owns (or not)."""
    out: list[tuple[bytes, str]] = []
    n = 0
    while len(out) < count:
        n += 1
        name = f"bench-room-{n}"
        if shard.owns(name) is own:
            event: webhook.WebhookEvent = Room(name).joined(user(time.time()))
            body, headers = signed(event, KEY, SECRET)
            out.append((body, headers["Authorization"]))
    return out


def per_webhook(work: list[tuple[bytes, str]], shard: Shard, count_it: bool) -> float:
    """Microseconds of CPU per webhook through the intake's steps."""
    verifier = WebhookVerifier(KEY, SECRET)
    tracker = build_monitor(Config(KEY, SECRET)).tracker
    recent = RecentIds(100_000)
    start = time.process_time()
    for body, token in work:
        verifier.verify(body, token)
        event = parse_event(body)
        if not shard.owns(event.room_name):
            continue
        if count_it and event.id and not recent.seen(event.id):
            tracker.apply(event, time.time())
    return (time.process_time() - start) / len(work) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    shard = Shard(0, 2)
    foreign = bodies(args.events, shard, own=False)
    owned = bodies(args.events, shard, own=True)
    rounds: dict[str, list[float]] = {"foreign_us": [], "owned_us": []}
    before = machine.snapshot()
    for _ in range(5):
        rounds["foreign_us"].append(per_webhook(foreign, shard, count_it=False))
        rounds["owned_us"].append(per_webhook(owned, shard, count_it=True))
    busy = machine.others(before, machine.snapshot())
    medians = {name: round(statistics.median(v), 1) for name, v in rounds.items()}
    print(json.dumps(medians))
    print_summary("shard_drop", [Figure("foreign_shard_drop", medians["foreign_us"], "us", 30,
                                        "lower", busy)])


if __name__ == "__main__":
    main()
