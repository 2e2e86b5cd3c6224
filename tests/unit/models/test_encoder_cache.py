"""Incremental encoding (models/encoder_cache.py) gives what full encoding gives, and
encodes a member's new events alone."""
import numpy as np
import pytest
import torch

from models import encoder_cache
from models.encoder_cache import EncoderCache
from models.serving import predict

from tests.fixtures.model import excerpt_batch, shipped

CHURN_TOL, SCORE_TOL = 1e-5, 1e-5  # absolute, on probabilities: the stated tolerance


def _close(got, want) -> None:
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=CHURN_TOL)
    np.testing.assert_allclose(got[2], want[2], rtol=0, atol=SCORE_TOL)
    assert (got[1][:, 0] == want[1][:, 0]).mean() > 0.99  # near-ties may swap


def _rows(batch, index):
    return [a[index] for a in batch]


def _growing_sequences():
    """Real sequences of 1-50 events, each member's after every event, in event order:
    most rows extend an earlier row by one event, some windows have slid."""
    return excerpt_batch(every=1)


@pytest.mark.parametrize("size", [1, 3, 64, 256])
def test_incremental_encoding_equals_full_encoding_at_every_length_and_batch(size):
    model, vocab, k = shipped()
    batch = _growing_sequences()
    lengths = (batch[1] > 0).sum(axis=1)
    assert set(range(1, 51)) <= set(lengths.tolist())
    cache = EncoderCache()
    at = np.tile(np.array([7, 30, 90], np.float32) * 86400.0, (len(lengths), 1))
    for start in range(0, len(lengths), size):
        rows = slice(start, start + size)
        got = predict(model, vocab, *_rows(batch, rows), k=k, cache=cache, at_silences=at[rows])
        want = predict(model, vocab, *_rows(batch, rows), k=k, at_silences=at[rows])
        _close(got, want)
        np.testing.assert_allclose(got[3], want[3], rtol=0, atol=CHURN_TOL)
    assert cache.real == int(lengths.sum()) and cache.extended > 0
    assert cache.positions < cache.real  # prefixes were reused


@pytest.mark.parametrize("added", [1, 3, 10])
def test_a_member_who_added_k_events_costs_k_positions(added):
    """Members scored at n - k events, then at n (n < 50: no window slid): the second
    scoring encodes exactly k positions a row, and equals full encoding."""
    model, vocab, k = shipped()
    batch = _growing_sequences()
    lengths = (batch[1] > 0).sum(axis=1)
    # a member's rows at n = m (k + 1) only: none is another's prefix row (n - k events)
    now = [a[(lengths > added) & (lengths < 50) & (lengths % (added + 1) == 0)] for a in batch]
    before = [np.concatenate([np.zeros_like(a[:, :added]), a[:, :-added]], axis=1) for a in now[:3]] + [now[3]]
    assert len(now[0]) > 40
    cache = EncoderCache()
    predict(model, vocab, *before, k=k, cache=cache)
    positions, extended, hits = cache.positions, cache.extended, cache.hits
    got = predict(model, vocab, *now, k=k, cache=cache)
    grown = cache.extended - extended  # the others were rows of `before` too: hits
    assert grown > 40 and grown + cache.hits - hits == len(now[0])
    assert cache.positions - positions == added * grown
    _close(got, predict(model, vocab, *now, k=k))


@pytest.mark.parametrize("incremental", [True, False])
def test_a_sequence_seen_before_needs_no_encoder(incremental):
    model, vocab, k = shipped()
    items, types, gaps, silence = excerpt_batch()
    cache = EncoderCache(incremental=incremental)
    first = predict(model, vocab, items, types, gaps, silence, k=k, cache=cache)
    distinct = len({(tuple(i), t.tobytes(), g.tobytes()) for i, t, g in zip(items, types, gaps)})
    assert len(cache.entries) == distinct
    positions = cache.positions
    later = silence + 30 * 86400.0  # the same members at a later checkpoint: every row a hit
    again = predict(model, vocab, items, types, gaps, later, k=k, cache=cache)
    assert cache.positions == positions and cache.hits == len(items)
    _close(first, predict(model, vocab, items, types, gaps, silence, k=k))
    _close(again, predict(model, vocab, items, types, gaps, later, k=k))


@pytest.mark.parametrize("slots", [2, 5, 40])
def test_a_small_budget_evicts_and_answers_the_same(slots):
    model, vocab, k = shipped()
    batch = _growing_sequences()
    probe = EncoderCache()
    predict(model, vocab, *_rows(batch, slice(0, 2)), k=k, cache=probe)
    slot_bytes = probe.max_bytes // probe.slots + 1
    cache = EncoderCache(max_bytes=slots * slot_bytes)
    for start in range(0, 400, 16):
        rows = slice(start, start + 16)
        got = predict(model, vocab, *_rows(batch, rows), k=k, cache=cache)
        _close(got, predict(model, vocab, *_rows(batch, rows), k=k))
        assert len(cache.entries) <= cache.slots - 1 and cache.slots == slots
        assert sorted(cache.entries.values()) == sorted(set(cache.entries.values()))  # one entry a slot
        # The tables it keeps, the gathers' scratch included, stay within the budget.
        assert sum(t.numel() * t.element_size() for t in (cache.kv, cache.last, cache.gathered)) <= cache.max_bytes
    assert cache.gathered.shape[2] == cache.scratch_rows == slots // 8 and cache.extended > 0


def test_a_hash_collision_is_a_miss_not_a_wrong_answer(monkeypatch):
    """Every prefix of every row hashed alike: found entries are checked event by
    event, so rows still get their own sequence's encoding."""
    model, vocab, k = shipped()
    batch = _growing_sequences()
    monkeypatch.setattr(encoder_cache, "prefix_hashes", lambda codes: np.full(codes.shape, 7, np.uint64))
    cache = EncoderCache()
    for start in range(0, 300, 50):
        rows = slice(start, start + 50)
        _close(predict(model, vocab, *_rows(batch, rows), k=k, cache=cache),
               predict(model, vocab, *_rows(batch, rows), k=k))
    assert len(cache.entries) == 1


def test_incremental_encoding_under_bf16_keeps_the_gpu_variants_tolerance():
    """The GPU variant (bf16 autocast; its keys and values cached in bf16), checked on the
    CPU: incremental against full encoding of the same bf16 network, and against fp32,
    within the bf16 tolerance of test_serving (churn 0.02 absolute, top-1 for 95 % of rows)."""
    bf16, vocab, k = shipped("bf16")
    fp32, _, _ = shipped("fp32")
    batch = _growing_sequences()
    cache = EncoderCache()
    got = [predict(bf16, vocab, *_rows(batch, slice(s, s + 64)), k=k, cache=cache)
           for s in range(0, len(batch[0]), 64)]
    assert cache.kv.dtype == torch.bfloat16 and cache.extended > 0 and cache.positions < cache.real
    churn, top = np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])
    for want in (predict(bf16, vocab, *batch, k=k), predict(fp32, vocab, *batch, k=k)):
        assert np.abs(churn - want[0]).max() <= 0.02
        assert (top[:, 0] == want[1][:, 0]).mean() >= 0.95


@pytest.mark.parametrize("size", [1, 16, 64])
def test_what_the_table_held_before_never_reaches_an_answer(size):
    """A row of a group reads its slot past its own prefix (under the mask, weighted 0):
    slots never written hold whatever the allocation left, NaN here; answers stay finite
    and equal to full encoding."""
    model, vocab, k = shipped()
    batch = _growing_sequences()
    cache = EncoderCache()
    predict(model, vocab, *_rows(batch, slice(0, 1)), k=k, cache=cache)  # allocates the table
    with torch.inference_mode():  # the table is made under it
        cache.kv[:, :, cache.free] = float("nan")
    for start in range(1, 400, size):
        rows = slice(start, start + size)
        got = predict(model, vocab, *_rows(batch, rows), k=k, cache=cache)
        assert np.isfinite(got[0]).all() and np.isfinite(got[2]).all()
        _close(got, predict(model, vocab, *_rows(batch, rows), k=k))
    assert cache.extended > 0


def test_a_row_without_events_beside_rows_that_reuse_a_prefix():
    """An all-padding row grouped with rows that read earlier positions sees no key at all
    in the last block: it gets what full encoding gives it, not NaN."""
    model, vocab, k = shipped()
    batch = _growing_sequences()
    cache = EncoderCache()
    predict(model, vocab, *_rows(batch, slice(0, 200)), k=k, cache=cache)
    rows = [a[200:230].copy() for a in batch]
    rows[0][0, :], rows[1][0, :], rows[2][0, :] = b"", 0, 0.0  # row 0: no events
    extended = cache.extended
    got = predict(model, vocab, *rows, k=k, cache=cache)
    assert cache.extended > extended and np.isfinite(got[0]).all() and np.isfinite(got[2]).all()
    _close(got, predict(model, vocab, *rows, k=k))


def test_two_rows_extending_one_cached_prefix_keep_an_entry_each():
    """Two members' sequences that grew from the same cached one, scored together: one
    takes the prefix's slot, the other a new one; asked again, both are answered from the
    cache with their own encoding."""
    model, vocab, k = shipped()
    batch = _growing_sequences()
    lengths = (batch[1] > 0).sum(axis=1)
    i = next(i for i in range(len(lengths) - 1) if 5 <= lengths[i] < 49 and lengths[i + 1] == lengths[i] + 1)
    prefix, grown = _rows(batch, slice(i, i + 1)), _rows(batch, slice(i + 1, i + 2))
    other = [a.copy() for a in grown]
    other[0][0, -1] = next(x.encode() for x in vocab.items if x.encode() != grown[0][0, -1])
    both = [np.concatenate([a, b]) for a, b in zip(grown, other)]
    cache = EncoderCache()
    predict(model, vocab, *prefix, k=k, cache=cache)
    first = predict(model, vocab, *both, k=k, cache=cache)
    assert cache.extended == 2 and len(cache.entries) == 2
    hits = cache.hits
    again = predict(model, vocab, *both, k=k, cache=cache)
    assert cache.hits == hits + 2
    want = predict(model, vocab, *both, k=k)
    _close(first, want)
    _close(again, want)


@pytest.mark.parametrize("width", [1, 2, 50, 64, 130])
def test_prefix_hashes_are_the_rolling_hash_of_each_rows_real_events(width):
    """The closed form equals the rolling hash h = h * M + code (mod 2^64), column by
    column, for codes up to 63 bits, leading padding included."""
    rng = np.random.default_rng(width)
    codes = rng.integers(1, 1 << 63, (40, width), dtype=np.int64)
    for row, pad in enumerate(rng.integers(0, width + 1, 40)):
        codes[row, :pad] = 0
    m, expected = int(encoder_cache._MULTIPLIER), np.zeros(codes.shape, np.uint64)
    for row in range(codes.shape[0]):
        h = 0
        for c in range(width):
            h = (h * m + int(codes[row, c])) % (1 << 64)
            expected[row, c] = h
    got = encoder_cache.prefix_hashes(codes)
    assert got.dtype == np.uint64 and (got == expected).all()
    assert (got[(codes != 0).cumsum(axis=1) == 0] == 0).all()  # padding before the first event: 0
