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


def test_json_lines_carry_the_record_position_and_one_line_errors():
    import json

    from stream.log_limit import JsonLines

    record = logging.LogRecord("stream.processing.outputs", logging.WARNING, __file__, 1,
                               "input record dead-lettered (%s)", ("NOT_JSON",), None)
    record.topic, record.partition, record.offset, record.reason = "shop.events", 3, 41, "NOT_JSON"
    record.member_id = "m-secret"  # not a field the lines carry
    line = JsonLines().format(record)
    assert "\n" not in line
    got = json.loads(line)
    assert {k: got[k] for k in ("level", "logger", "message", "topic", "partition", "offset", "reason")} == {
        "level": "warning", "logger": "stream.processing.outputs",
        "message": "input record dead-lettered (NOT_JSON)", "topic": "shop.events", "partition": 3,
        "offset": 41, "reason": "NOT_JSON"}
    assert got["time"].endswith("Z") and "m-secret" not in line
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = JsonLines().format(failed)
    assert "\n" not in out and json.loads(out)["error"] == "ValueError: bad\nthing"


def test_a_dead_letter_is_logged_with_its_topic_partition_offset_and_reason(caplog):
    from stream.processing.outputs import _dead_letter
    from stream.processing.records import BatchResult, Record
    from stream.domain.parsing import Rejected

    out = BatchResult()
    with caplog.at_level(logging.WARNING, logger="stream.processing.outputs"):
        _dead_letter(out, Record(2, 17, b"member-9", b"{oops"), Rejected("NOT_JSON", "not UTF-8 JSON: member-9"))
    [record] = caplog.records
    assert (record.topic, record.partition, record.offset, record.reason) == ("shop.events", 2, 17, "NOT_JSON")
    assert "member-9" not in record.getMessage()
