"""Pseudonyms (stream/domain/pseudonym.py), dead letters minimised for them
(stream/domain/dead_letter.py), and the processor that applies both at ingest."""
import hashlib
import hmac

import orjson
import pytest
from hypothesis import given, strategies as st

from stream.contract import topics
from stream.domain.dead_letter import minimised
from stream.domain.pseudonym import Pseudonymizer, reidentify
from tests.fixtures.events import T0, event, messages
from tests.fixtures.workers import fake_worker, run

KEY = "k" * 40


def test_a_pseudonym_is_the_key_id_and_the_keyed_hmac():
    p = Pseudonymizer(KEY, "k7")
    expected = hmac.new(KEY.encode(), b"12707", hashlib.sha256).hexdigest()[:32]
    assert p("12707") == p(b"12707") == f"k7.{expected}"
    assert Pseudonymizer("x" * 40, "k7")("12707") != p("12707")  # another key, another pseudonym
    assert KEY not in repr(p)


@pytest.mark.parametrize("key, key_id, message", [("short", "k1", "at least 32"), (KEY, "a b", "key id")])
def test_weak_keys_and_odd_ids_are_refused(key, key_id, message):
    with pytest.raises(ValueError, match=message):
        Pseudonymizer(key, key_id)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30, unique=True))
def test_reidentify_finds_each_member_under_its_own_key(members):
    old, new = Pseudonymizer(KEY, "old"), Pseudonymizer("n" * 40, "new")
    half = len(members) // 2
    pseudonyms = [old(m) for m in members[:half]] + [new(m) for m in members[half:]]
    back = reidentify(pseudonyms + ["new.unknown"], members, {"old": KEY, "new": "n" * 40})
    assert back == dict(zip(pseudonyms, members))


def test_a_minimised_dead_letter_keeps_contract_fields_only():
    p = Pseudonymizer(KEY, "k1")
    raw = orjson.dumps({"event_id": "e1", "member_id": "12707", "type": "teleport", "item_id": "x" * 500,
                        "ts": 5, "email": "someone@example.com", "price": 1.5})
    assert orjson.loads(minimised(raw, p)) == {"event_id": "e1", "member_id": p("12707"), "type": "teleport",
                                               "item_id": "<str of 500, removed>", "ts": 5, "price": 1.5}
    assert minimised(b"not json 12707", p) == b"" and minimised(b"[1, 2]", p) == b"" and minimised(None, p) == b""
    assert orjson.loads(minimised(b'{"member_id": 12707}', p)) == {"member_id": "<int, removed>"}


def test_the_processor_pseudonymises_before_anything_is_kept_or_sent():
    worker = fake_worker(frames=False, pseudonymization_key=KEY, pseudonymization_key_id="k1")
    p = Pseudonymizer(KEY, "k1")
    # Event and session ids are kept as given (SECURITY.md: they must not embed a member id).
    values = [orjson.dumps({**orjson.loads(event("12707", n, ts=T0 + n * 1000)), "event_id": f"e{n}",
                            "session_id": f"s{n}", "email": "x@example.com"}) for n in (0, 1)]
    values.append(b'{"member_id": "12707", "extra": 1}')

    async def go():
        await worker.take(messages(0, 0, values))
        await worker.decisions.drained()
        await worker.publish(await worker.processor.score_pending(100))
        await worker.commit.commit()

    run(go())
    assert set(worker.processor.cache) == {p("12707")} and worker.processor.state(p("12707")).n_events == 2
    assert worker.store and all(b"12707" not in k + v and b"example" not in v for k, v in worker.store.items())
    sent = [m for batch, _ in worker.sender.calls for m in batch]
    assert sent and all(b"12707" not in (m[1] or b"") + (m[2] or b"") for m in sent)
    [dead] = [m for m in sent if m[0] == topics.DEAD_LETTER]
    assert orjson.loads(dead[2]) == {"member_id": p("12707")}  # `extra` dropped


def test_oversize_and_non_json_dead_letters_are_not_parsed_again():
    p = Pseudonymizer(KEY, "k1")
    big = orjson.dumps({"member_id": "12707", "item_id": "x"})
    assert minimised(big, p, "OVERSIZE") == b"" and minimised(big, p, "NOT_JSON") == b""
    assert orjson.loads(minimised(big, p, "INVALID")) == {"member_id": p("12707"), "item_id": "x"}


def test_states_stored_under_raw_ids_are_not_recovered_by_a_pseudonymising_worker(caplog):
    from stream.domain.inactivity import InactivitySchedule
    from stream.domain.member_state import MemberState
    from stream.processing.pending import PendingScoring
    from stream.processing.recovery import recover_partition

    p = Pseudonymizer(KEY, "k1")
    store = {}
    for member in ("12707", p("17848"), "k0." + "0" * 32):
        state = MemberState(member, 0, items=["i"], types=[5], times=[T0], hashes=[1], n_events=1,
                            pending_score=True)
        store[member.encode()] = state.to_bytes()
    cache = {}
    mine = recover_partition(0, store, InactivitySchedule([7, 14], 0), cache, PendingScoring(), "k1.")
    assert [s.member_id for s in mine] == [p("17848")] and list(cache) == [p("17848")]
    assert "2 stored member states are not under this key's pseudonyms" in caplog.text
    everyone = recover_partition(0, store, InactivitySchedule([7, 14], 0), {}, PendingScoring())
    assert len(everyone) == 3  # without a key, all are recovered as before
