"""bench/cache_bound.py: its rows, the renamed copies, and a bad argument."""
import subprocess
import sys

import orjson

from bench.cache_bound import HEADER, _renamed, row


def test_a_row_puts_each_figure_under_its_column():
    r = {"bound": 20000, "members": 95712, "cached": 20000, "left": 75712, "tracked": 289783, "full_ms": 358.6,
         "worst_ms": 326.2, "peak_mb": 1386.4, "cpu_s": 118.7}
    line = row(r)
    assert len(line) == len(HEADER)
    assert line.split() == ["20,000", "95,712", "20,000", "75,712", "289,783", "359", "326", "1,386", "119"]
    assert row({**r, "bound": 0}).split()[0] == "none"


def test_a_copy_renames_the_member_and_the_event_and_leaves_what_is_no_event():
    line = orjson.dumps({"event_id": "e1", "member_id": 17850, "item_id": "85123A", "type": "view", "ts": 1})
    assert orjson.loads(_renamed(line, "c1-")) == {"event_id": "c1-e1", "member_id": "c1-17850",
                                                    "item_id": "85123A", "type": "view", "ts": 1}
    for bad in (b"{not json", b'{"event_id": "e1"}', b"[1, 2]"):
        assert _renamed(bad, "c1-") == bad


def test_a_bad_argument_is_one_line_and_a_non_zero_exit():
    done = subprocess.run([sys.executable, "-m", "bench.cache_bound", "--copies", "0", "100"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "cache_bound: --copies must be at least 1 and each BOUND at least 0"
