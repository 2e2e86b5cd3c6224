"""Log lines rate limited per message template (stream/log_limit.py)."""
import logging

from stream.log_limit import RateLimit


def test_one_line_per_template_per_period_then_a_count_of_those_left_out():
    t = [0.0]
    limit = RateLimit(every_s=10.0, clock=lambda: t[0])

    def record(msg, *args, name="aiokafka"):
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)

    passed = []
    for i in range(200):  # 200 failures in 2 s
        t[0] = i / 100
        r = record("Unable connect to node with id %s: %s", 1, "refused")
        if limit.filter(r):
            passed.append(r.getMessage())
    assert passed == ["Unable connect to node with id 1: refused"]
    assert limit.filter(record("another template"))  # limited per template, not overall
    assert limit.filter(record("Unable connect to node with id %s: %s", 1, "refused", name="faust"))
    t[0] = 12.0
    r = record("Unable connect to node with id %s: %s", 1, "refused")
    assert limit.filter(r)
    assert r.getMessage() == "Unable connect to node with id 1: refused [199 more like this in the last 12 s not logged]"
