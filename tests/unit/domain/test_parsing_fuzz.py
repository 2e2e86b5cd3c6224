"""A fuzz of the input parser (hypothesis): whatever bytes and key arrive, a
record is an event the contract accepts or a rejection with a reason, never
an exception (an exception in the agent used to lose the records after it)."""
import math
import unicodedata

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from pydantic import ValidationError

from stream.contract.schemas import EVENT_TYPES, ShopEvent
from stream.domain.parsing import Event, Rejected, parse_record

pytestmark = pytest.mark.reliability

CODES = {"EMPTY", "OVERSIZE", "NOT_JSON", "NOT_OBJECT", "INVALID", "NO_KEY", "KEY_MISMATCH"}
MAX_BYTES = 16 * 1024

text = st.text(max_size=40) | st.sampled_from(["\x00input:3", "\u202e", "\ud7ff", "m1", "", " " * 3])
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**20, max_value=10**20)
    | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6)
times = (st.integers(min_value=-10**15, max_value=10**15) | st.floats(allow_nan=False)
         | st.sampled_from(["2011-01-05T10:00:00Z", "2011-01-05T10:00:00", "1970-01-01T00:00:00Z",
                            "9999-12-31T23:59:59Z", "soon", ""]))
# Mostly valid fields, each sometimes broken: both sides of every rule get reached.
ids = st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=24) | text
events = st.fixed_dictionaries(
    {"event_id": ids, "member_id": ids, "type": st.sampled_from(EVENT_TYPES) | text,
     "item_id": ids, "ts": st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000) | times},
    optional={"price": st.floats(min_value=0, max_value=1e6) | st.floats() | st.integers() | text,
              "quantity": st.integers(min_value=1, max_value=1000) | st.integers() | st.floats() | text,
              "session_id": ids | st.none(), "category": ids | st.none(), "schema_version": st.just(1) | st.integers()})


def _check(raw, key):
    result = parse_record(raw, key, MAX_BYTES)
    event(result.code if isinstance(result, Rejected) else "event")
    if isinstance(result, Rejected):
        assert result.code in CODES and result.detail
        return result
    assert isinstance(result, Event)
    assert key == result.member_id.encode()
    # No control character (C0, DEL, C1: the contract's rule; the table's own keys begin with one).
    assert not any(unicodedata.category(c) == "Cc" for c in result.member_id)
    assert result.event_id and result.item_id
    assert result.type in EVENT_TYPES and result.quantity >= 1 and (result.price is None or math.isfinite(result.price))
    # What the fast path accepted, the contract's model accepts with the same values.
    model = ShopEvent.model_validate(orjson.loads(raw))
    assert (model.member_id, model.event_id, model.item_id) == (result.member_id, result.event_id, result.item_id)
    return result


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300) | st.none(), key=st.binary(max_size=12) | st.none())
def test_any_bytes_are_an_event_or_a_rejection(raw, key):
    _check(raw, key)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, keyed=st.sampled_from(["member", "none", "other"]))
def test_any_event_shaped_object_is_an_event_or_a_rejection(event, keyed):
    try:
        raw = orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):
        return  # not representable as JSON at all (e.g. an integer past 64 bits)
    member = event["member_id"]
    key = {"member": member.encode("utf-8", "surrogatepass"), "none": None, "other": b"someone-else"}[keyed]
    result = _check(raw, key)
    if keyed == "none":
        assert isinstance(result, Rejected)
    if isinstance(result, Event) is False and keyed == "member":
        try:
            ShopEvent.model_validate(event)
        except ValidationError:
            return
        # The model accepts it: then only the key (a member id that is no valid key) or size refuse it.
        assert result.code in {"OVERSIZE", "INVALID", "KEY_MISMATCH"}, result


@settings(max_examples=200, deadline=None)
@given(value=json_value)
def test_any_json_value_is_an_event_or_a_rejection(value):
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return
    _check(raw, b"m1")
