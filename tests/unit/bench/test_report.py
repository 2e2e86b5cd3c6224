"""bench/report.py: issue 20's targets read against the same run's ceiling and floor."""
from bench.report import targets


def _run(pipeline, p50, p99, ceiling=60_000.0):
    return {"pipeline_eps": pipeline, "faust_trivial_eps": 3_000.0, "ceiling_eps": ceiling,
            "latency_ms": {"2000": {"p50": p50, "p99": p99}},
            "latency_floor_ms": {"2000": {"p50": 20.0, "p99": 40.0}}}


def test_each_target_is_met_or_short_against_this_runs_baselines():
    short = targets(_run(9_000.0, 38.5, 70.7))
    assert [line.split()[-1] for line in short[1:]] == ["short", "short", "short", "short"]
    assert "3.0x" in short[1] and "15.0%" in short[2] and "at most 30.0" in short[3] and "at most 60.0" in short[4]
    met = targets(_run(30_000.0, 30.0, 60.0))  # exactly at each bound
    assert [line.split()[-1] for line in met[1:]] == ["met", "met", "met", "met"]
    assert [line.split()[-1] for line in targets(_run(29_999.0, 30.1, 60.1, ceiling=50_000.0))[1:]] == [
        "short", "met", "short", "short"]


def test_without_a_latency_run_only_throughput_is_read():
    r = _run(9_000.0, 0, 0)
    del r["latency_floor_ms"]
    assert len(targets(r)) == 3
