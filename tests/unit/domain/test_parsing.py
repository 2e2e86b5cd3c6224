import orjson
import pytest
from pydantic import ValidationError

from stream.domain.parsing import Event, Rejected, fast_event, parse_event, parse_record
from stream.processing import keys
from stream.contract.schemas import ShopEvent

from tests.fixtures.paths import EXCERPT

GOOD = {"event_id": "e1", "member_id": "m1", "type": "purchase", "item_id": "85123A",
        "ts": "2010-12-01T08:26:00Z", "price": 2.55, "quantity": 6, "session_id": "536365"}


def parse(obj, key=b"m1", max_bytes=16384):
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return parse_event(raw, key, max_bytes)


def test_valid_event_normalises_time_to_epoch_ms():
    event = parse(GOOD)
    assert isinstance(event, Event)
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
    ({**GOOD, "member_id": "x" * 129}, "FIELD_TOO_LONG", "member_id"),
    ({**GOOD, "category": "c" * 129}, "FIELD_TOO_LONG", "category"),
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


def test_a_record_must_be_keyed_by_its_member():
    assert parse_record(orjson.dumps(GOOD), b"m1", 16384).member_id == "m1"
    missing = parse_record(orjson.dumps(GOOD), None, 16384)
    assert isinstance(missing, Rejected) and missing.code == "NO_KEY"
    assert parse_record(orjson.dumps(GOOD), b"other", 16384).code == "KEY_MISMATCH"
    assert parse_record(b"\xff", None, 16384).code == "NOT_JSON"  # what is wrong with the value first
    assert parse_record(None, None, 16384).code == "EMPTY"


# The fast path against ShopEvent: every event it accepts, ShopEvent accepts with the
# same values of the same types; it never decides a rejection.
VARIANTS = {
    "event_id": ["e", "x" * 128, "x" * 129, "", "é" * 128, 7, True, None, ["e"], {"e": 1}],
    "member_id": ["m1", "x" * 129, "", 1, None, 1.5],
    "type": ["view", "click", "add_to_cart", "remove_from_cart", "purchase", "View", "", 1, None, ["view"]],
    "item_id": ["85123A", "", "x" * 128, 0, False],
    "ts": [1291191960000, "2010-12-01T08:26:00Z", "2010-12-01T08:26:00.123+01:00", "2010-12-01 08:26:00z",
           "2010-12-01T08:26:00", "soon", "", 1291191960000.0, True, None, -5, 10 ** 30,
           788918400000, 788918399999, 4102444800000, 4102444799999, "1995-01-01T00:00:00Z",
           "2100-01-01T00:00:00Z", [1]],
    "session_id": [None, "", "s" * 128, "s" * 129, 5, False],
    "price": [None, 0, 0.0, 2.55, 10 ** 20, -0.01, -1, float("inf"), float("nan"), "2.5", True, [1]],
    "quantity": [1, 2, 0, -1, 1.0, "2", None, True, 10 ** 12],
    "category": [None, "", "c" * 128, "c" * 129, 3],
    "schema_version": [1, 2, 0, True, 1.0, "1", None],
}
MISSING = object()


def _verdicts(data: dict):
    fast = fast_event(data)
    try:
        slow = Event.of(ShopEvent.model_validate(data))
    except ValidationError:
        slow = None
    return fast, slow


@pytest.mark.parametrize("field", sorted(VARIANTS))
def test_the_fast_path_accepts_only_what_the_contract_accepts_with_the_same_values(field):
    fast_accepted = 0
    for value in [*VARIANTS[field], MISSING]:
        for base in (GOOD, {**GOOD, "ts": 1291191960000, "category": "x", "schema_version": 1, "extra": [1]},
                     {k: v for k, v in GOOD.items() if k not in ("price", "quantity", "session_id")}):
            data = {k: v for k, v in base.items() if k != field}
            if value is not MISSING:
                data[field] = value
            fast, slow = _verdicts(data)
            if fast is not None:
                fast_accepted += 1
                assert slow is not None, data
                assert [(getattr(fast, k), type(getattr(fast, k))) for k in Event.__slots__] == \
                    [(getattr(slow, k), type(getattr(slow, k))) for k in Event.__slots__], data
    assert fast_accepted >= 3  # each field's valid values took the fast path


def test_real_events_take_the_fast_path():
    lines = []
    for line in EXCERPT.read_bytes().splitlines():
        try:
            lines.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue  # the excerpt's malformed lines, for the dead-letter topic
    lines = [d for d in lines if isinstance(d, dict)]
    fast = [fast_event(d) for d in lines]
    slow = [_verdicts(d)[1] for d in lines]
    assert sum(f is not None for f in fast) == sum(s is not None for s in slow) > 800
    assert all(f == s for f, s in zip(fast, slow) if f is not None)


def test_no_member_id_reaches_the_bookkeeping_keys():
    """Every bookkeeping key of the members table, sent as a member id, is refused
    (stream/processing/keys.py: they start with U+0000); so are other control
    characters. Printable ids of any script are taken, on the fast path or not."""
    def with_member(member):
        return orjson.dumps({"event_id": "e1", "member_id": member, "type": "view", "item_id": "i1",
                             "ts": 1_291_191_960_000})

    refused = [k.decode() for k in keys.bookkeeping_keys(16)] + ["a\tb", "line\nbreak", "x\x7f", "\x1f"]
    for member in refused:
        got = parse_event(with_member(member), None, 16384)
        assert isinstance(got, Rejected) and got.code == "INVALID" and got.detail.startswith("member_id"), member
    for member in ("12707", "café-Ω 7", "a\u00a0b", "会员-1"):
        got = parse_event(with_member(member), None, 16384)
        assert isinstance(got, Event) and got.member_id == member, member


def test_a_shops_own_cap_on_string_fields_dead_letters_what_is_longer():
    event = orjson.dumps({**GOOD, "item_id": "i" * 40})
    assert not isinstance(parse_event(event, None, 1 << 14), Rejected)
    assert parse_event(event, None, 1 << 14, max_chars=32) == Rejected("FIELD_TOO_LONG",
                                                                         "item_id: 40 characters, limit 32")
    assert not isinstance(parse_event(event, None, 1 << 14, max_chars=40), Rejected)
