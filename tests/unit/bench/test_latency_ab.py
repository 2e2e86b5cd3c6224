"""bench/latency_ab.py: the settings of each run, and a table line's figures in their columns."""
import pytest

from bench.latency_ab import HEADER, parse_settings, row


def test_settings_of_a_run():
    assert parse_settings("") == {}
    assert parse_settings("frame_batch_within_s=0.001,scoring_concurrency=1") == {
        "frame_batch_within_s": "0.001", "scoring_concurrency": "1"}
    with pytest.raises(ValueError, match="not name=value: frames"):
        parse_settings("frames,scoring_concurrency=1")


def test_a_line_puts_each_figure_under_its_column():
    r = {"p50": 34.25, "p99": 99.8, "updates_measured": 1288}
    floor = {"p50": 18.7, "p99": 32.6}
    stages = {"offer_to_frame": {"p50": 5.6}, "frame_to_output": {"p50": 27.0}, "output_to_arrival": {"p50": 5.2}}
    inside = {"pending_ms": 2.36, "request_ms": 9.82, "server_ms": 6.2, "rows_per_request": 2.0, "gc_pauses": 41,
              "gc_ms": 212.36}
    line = row("(defaults)", r, floor, stages, inside)
    assert len(line) == len(HEADER)
    assert line.split()[1:] == ["34.2", "99.8", "18.7", "32.6", "5.6", "27.0", "5.2", "2.4", "9.8", "6.2", "2.0",
                                "1,288", "41", "212.4"]
