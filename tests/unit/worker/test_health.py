"""What /health answers (stream/worker/health.py)."""
from stream.scoring.breaker import Breaker
from stream.settings import Settings
from stream.worker.app import build_app
from stream.worker.health import assess
from stream.worker.stall_watcher import StallWatcher


def test_health_is_ok_degraded_or_starting_with_its_reasons():
    up = Breaker("triton")
    ok = assess(ready=True, scoring=up, held=0, held_s=0.0)
    assert (ok.status, ok.code, ok.reasons) == ("ok", 200, [])
    assert assess(ready=False, scoring=up, held=0, held_s=0.0).code == 503

    down = Breaker("triton")
    down.failed("UNAVAILABLE: connection refused")
    fallback = assess(ready=True, scoring=down, held=0, held_s=0.0)
    assert (fallback.status, fallback.code) == ("degraded", 200)  # events still go to outputs
    assert "triton unreachable" in fallback.reasons[0] and "connection refused" in fallback.reasons[0]
    held = assess(ready=True, scoring=down, held=2, held_s=12.4)
    assert (held.status, held.code, len(held.reasons)) == ("degraded", 503, 2)
    assert held.reasons[1].startswith("2 batches wait 12 s")
    broker = assess(ready=True, scoring=up, held=0, held_s=0.0, broker_down_s=31.0)
    assert (broker.status, broker.code, broker.reasons) == ("degraded", 503, ["broker unreachable for 31 s"])
    starting = assess(ready=False, scoring=down, held=0, held_s=0.0)
    assert (starting.status, starting.code) == ("starting", 503) and starting.reasons


def test_before_faust_starts_its_consumer_the_worker_owns_no_partition(tmp_path):
    """/health is served before Faust's consumer thread runs: asking for the assignment then
    raised ConsumerNotStarted, a 500 and a traceback in the log (a fresh clone's test run met
    it); the worker owns nothing yet, so /health says starting."""
    app, worker = build_app(Settings(_env_file=None, state_dir=tmp_path))
    assert StallWatcher(app, worker).owned() == set()
