"""The scorer's own BYTES serialisation against tritonclient's."""
import numpy as np
from tritonclient.utils import serialize_byte_tensor

import pytest

from stream.scoring.scores import Row
from stream.scoring.triton import _wire_items, bytes_wire, strings_from_wire


def _rows():
    return [Row([b"", b"", b"85123A", "é-ü".encode(), b"x" * 300], [0, 0, 1, 5, 2], [0.0] * 5, 0.0),
            Row([b"", b"", b"", b"85123A", b"\x00odd"], [0, 0, 0, 1, 1], [0.0] * 5, 7.0)]


def test_bytes_wire_is_tritonclients_serialisation_byte_for_byte():
    rows = _rows()
    expected = serialize_byte_tensor(np.array([r.items for r in rows], dtype=object)).item()
    wire = _wire_items()
    assert bytes_wire(rows, wire) == expected
    assert len(wire) == 5  # "", 85123A, é-ü, x*300, \x00odd: each built once
    assert bytes_wire(rows, wire) == expected  # and again from the cache


def test_wire_cache_is_bounded():
    wire = _wire_items(max_entries=3)
    for i in range(10):
        assert wire[str(i).encode()] == b"\x01\x00\x00\x00" + str(i).encode()
    assert len(wire) <= 3


def test_strings_from_wire_reads_tritonclients_serialisation():
    top = [["85123A", "é-ü", ""], ["x" * 300, "22423", "\x00odd"]]
    raw = serialize_byte_tensor(np.array([[i.encode() for i in row] for row in top], dtype=object)).item()
    assert strings_from_wire(raw, 2, 3) == top
    with pytest.raises(ValueError, match="bytes after"):
        strings_from_wire(raw + b"\x00", 2, 3)
