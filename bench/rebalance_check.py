"""Nothing lost when a second worker joins during catch-up.

    python -m bench.rebalance_check            # the default input path
    python -m bench.rebalance_check --frames   # with MEMBERSTREAM_FRAMES=true

Loads the bench log into shop.events, starts one worker and a second one while
the first is catching up, waits until both stop moving, then reads the members
changelog back and sums every member's event count: with nothing lost and
nothing counted twice it equals the valid events of the log. Exit status 1
when it does not. Seen on 2026-11-22 with --frames: the frames topic held all
232,899 records, yet 10,000 to 20,000 events never reached the agents (both
healthy, no duplicates): frames fetched before the rebalance were skipped
without being redelivered (DESIGN.md section 8).
"""
from __future__ import annotations

import asyncio
import sys
import time

from bench.bench import loaded_stack, worker_env
from stream import framing, topics
from stream.launcher import start_worker, stopping
from stream.settings import Settings
from stream.tail import messages


async def table_events(bootstrap: str, topic: str) -> tuple[int, int]:
    """(members, sum of their event counts) from the newest changelog value per key."""
    from stream.member_state import MemberState

    newest = {m.key: m.value async for m in messages(bootstrap, topic, True, idle_s=2.0)
              if not m.key.startswith(b"\x00")}
    return len(newest), sum(MemberState.from_bytes(v).n_events for v in newest.values())


async def framed(bootstrap: str, topic: str) -> int:
    """Records held by the frames topic."""
    return sum([len(framing.unpack(m.value)[1]) async for m in messages(bootstrap, topic, True, idle_s=2.0)])


def main() -> int:
    settings = Settings()
    use_frames = "--frames" in sys.argv[1:]
    with loaded_stack(settings, "rebalance-check") as (lines, broker, triton, work):
        env = worker_env(broker, triton, frames="true" if use_frames else "false")
        first = start_worker({**env, "MEMBERSTREAM_STATE_DIR": str(work / "a")}, work, name="first")
        with stopping(first.process):
            second = start_worker({**env, "MEMBERSTREAM_STATE_DIR": str(work / "b")}, work, name="second")
            with stopping(second.process):
                last, still_since = -1, time.monotonic()
                while time.monotonic() - still_since < 30:
                    now = first.processed() + second.processed()
                    if now != last:
                        last, still_since = now, time.monotonic()
                    if now >= len(lines):
                        break
                    time.sleep(1.0)
                members, events = asyncio.run(table_events(
                    broker.bootstrap, f"{settings.app_id}-members-changelog"))
                in_frames = (asyncio.run(framed(broker.bootstrap, topics.frames_topic(settings.app_id)))
                             if use_frames else None)
    from stream.parsing import Rejected, parse_event
    valid = sum(not isinstance(parse_event(line, None, 1 << 20), Rejected) for line in lines)
    print(f"{'frames' if use_frames else 'direct'}: log {len(lines)} lines, {valid} valid events; "
          f"records taken by the two workers {last}; members table: {members} members holding "
          f"{events} events" + (f"; records in the frames topic {in_frames}" if use_frames else ""))
    return 0 if events == valid else 1


if __name__ == "__main__":
    sys.exit(main())
