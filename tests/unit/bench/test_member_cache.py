"""bench/member_cache.py measures the processor's decoded member states."""
import subprocess
import sys

from bench.member_cache import member_cache
from stream.domain.member_state import MemberState


def _state(member: str, events: int) -> MemberState:
    state = MemberState(member, 1)
    for n in range(events):
        state.items.append(f"item{n}")
        state.types.append(5)
        state.times.append(1_300_000_000_000 + n * 60_000)
        state.hashes.append(n)
    state.n_events = events
    return state


def test_decoded_states_cost_more_than_serialised_ones_and_are_tracked():
    r = member_cache([_state("a", 40), _state("b", 3)], 2_000)
    assert r["members"] == 2_000
    # A decoded state is a MemberState with lists of its events; serialised, one bytes.
    assert r["decoded_b"] > r["stored_b"] > 0
    assert r["objects"] >= 4 and r["full_collection_s"] > 0


def test_a_bad_size_is_one_line_and_a_non_zero_exit():
    done = subprocess.run([sys.executable, "-m", "bench.member_cache", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "member_cache: MEMBERS must be at least 1"
