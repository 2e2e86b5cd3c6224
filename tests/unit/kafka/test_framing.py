import pytest

from stream.kafka import framing


def test_a_frame_keeps_every_record_byte_for_byte():
    records = [(7, b"m1", b'{"a":1}'), (8, None, b"\xff\xfenot json"), (9, b"m2", None), (10, b"", b"")]
    frame = framing.pack(3, records)
    assert framing.unpack(frame) == (3, records)


def test_split_respects_both_limits_and_keeps_order():
    records = [(i, b"k", b"x" * 100) for i in range(10)]
    runs = list(framing.split(records, max_records=4, max_bytes=10_000))
    assert [len(r) for r in runs] == [4, 4, 2]
    runs = list(framing.split(records, max_records=100, max_bytes=360))  # 117 bytes each
    assert [len(r) for r in runs] == [3, 3, 3, 1]
    assert [rec for run in runs for rec in run] == records
    big = [(0, None, b"y" * 5000), (1, None, b"z")]
    assert [len(r) for r in framing.split(big, 100, 1000)] == [1, 1]  # an oversize record goes alone


@pytest.mark.parametrize("bad, why", [
    (b"MSF", "shorter than a frame header"),
    (b"XXXX" + bytes(8), "bad magic"),
    (framing.pack(0, [(1, b"k", b"value")])[:-2], "truncated"),
    (framing.pack(0, [(1, b"k", b"value")]) + b"!", "after the last record"),
])
def test_damaged_frames_are_refused(bad, why):
    with pytest.raises(framing.FrameError, match=why):
        framing.unpack(bad)
