"""The input cursor's bookkeeping (stream/processing/input_cursor.py), without a broker."""
from stream.processing.input_cursor import InputCursor
from stream.processing.keys import input_key, input_value, stored_offset, stored_watermark


def test_gap_is_measured_from_the_next_expected_offset():
    c = InputCursor()
    assert not c.knows(3)
    c.set(3, 10)
    assert (c.gap(3, 10), c.gap(3, 14), c.gap(3, 7)) == (0, 4, -3)
    c.advance(3, 14)
    assert c.next[3] == 15 and c.gap(3, 15) == 0 and c.idle_s(3) < 5
    c.forget({3})
    assert not c.knows(3)


def test_the_offset_is_stored_under_a_bookkeeping_key_per_partition():
    store = {input_key(2): b"1234", b"member-2": b"..."}
    assert input_key(2).startswith(b"\x00")  # never read as a member
    assert (stored_offset(store, 2), stored_offset(store, 1)) == (1234, None)
    # A bare offset was written before the watermark was stored with it: none is known.
    assert (stored_watermark(store, 2), stored_watermark(store, 1)) == (None, None)


def test_the_watermark_is_stored_with_the_offset_it_stands_at():
    store = {input_key(0): input_value(77, 1_291_191_960_000), input_key(1): input_value(5, None)}
    assert store[input_key(0)] == b"77 1291191960000"
    assert (stored_offset(store, 0), stored_watermark(store, 0)) == (77, 1_291_191_960_000)
    assert (stored_offset(store, 1), stored_watermark(store, 1)) == (5, None)
