import orjson
import pytest

from stream.parsing import Rejected, parse_event
from stream.schemas import ShopEvent

GOOD = {"event_id": "e1", "member_id": "m1", "type": "purchase", "item_id": "85123A",
        "ts": "2010-12-01T08:26:00Z", "price": 2.55, "quantity": 6, "session_id": "536365"}


def parse(obj, key=b"m1", max_bytes=16384):
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return parse_event(raw, key, max_bytes)


def test_valid_event_normalises_time_to_epoch_ms():
    event = parse(GOOD)
    assert isinstance(event, ShopEvent)
    assert event.ts == 1291191960000
    assert (event.price, event.quantity, event.session_id) == (2.55, 6, "536365")


def test_epoch_milliseconds_and_offsets_agree():
    a = parse({**GOOD, "ts": 1291191960000})
    b = parse({**GOOD, "ts": "2010-12-01T09:26:00+01:00"})
    assert a.ts == b.ts == 1291191960000


def test_defaults_and_unknown_fields_ignored():
    event = parse({k: v for k, v in GOOD.items() if k not in ("quantity", "price")} | {"extra": 1})
    assert event.quantity == 1 and event.price is None and event.schema_version == 1


@pytest.mark.parametrize("raw, code, fragment", [
    (b"{not json", "NOT_JSON", "not UTF-8 JSON"),
    (b"\xff\xfe", "NOT_JSON", "not UTF-8 JSON"),
    (b"[1, 2]", "NOT_OBJECT", "JSON list"),
    ({**GOOD, "type": "teleport"}, "INVALID", "type"),
    ({k: v for k, v in GOOD.items() if k != "item_id"}, "INVALID", "item_id: Field required"),
    ({**GOOD, "ts": "1970-01-01T00:00:00Z"}, "INVALID", "outside 1995..2100"),
    ({**GOOD, "ts": "2010-12-01T08:26:00"}, "INVALID", "time zone"),
    ({**GOOD, "ts": "yesterday"}, "INVALID", "RFC 3339"),
    ({**GOOD, "price": -1}, "INVALID", "price"),
    ({**GOOD, "quantity": 0}, "INVALID", "quantity"),
    ({**GOOD, "quantity": "2"}, "INVALID", "quantity"),
    ({**GOOD, "member_id": "x" * 129}, "INVALID", "member_id"),
    ({**GOOD, "schema_version": 2}, "INVALID", "schema_version"),
])
def test_rejections_name_the_problem(raw, code, fragment):
    result = parse(raw)
    assert isinstance(result, Rejected)
    assert result.code == code
    assert fragment in result.detail


def test_oversize_and_key_mismatch_and_empty():
    assert parse(GOOD, max_bytes=10).code == "OVERSIZE"
    assert parse(GOOD, key=b"other").code == "KEY_MISMATCH"
    assert parse(GOOD, key=None).member_id == "m1"
    assert parse_event(None, b"m1", 100).code == "EMPTY"
