import random
from datetime import datetime, timezone

from stream.domain.event_time import DAY_MS, rfc3339
from stream.contract.schemas import MAX_EVENT_MS, MIN_EVENT_MS, ShopEvent


def reference(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def test_rfc3339_is_datetimes_text_over_the_event_time_range():
    rng = random.Random(7)
    edges = [MIN_EVENT_MS, MAX_EVENT_MS - 1, MAX_EVENT_MS + 90 * DAY_MS,  # a checkpoint past the last event
             951_782_400_000 - 1, 951_782_400_000, 951_868_800_000,  # 2000-02-29 and around it
             1_291_191_960_000, 1_291_191_960_999, 1_291_248_000_000 - 1]
    values = edges + [rng.randrange(MIN_EVENT_MS, MAX_EVENT_MS) for _ in range(20_000)]
    values += sorted(rng.randrange(1_291_191_960_000, 1_291_191_960_000 + 30 * DAY_MS) for _ in range(5_000))
    assert [rfc3339(v) for v in values] == [reference(v) for v in values]
    assert rfc3339(951_782_400_000) == "2000-02-29T00:00:00.000Z"


def test_rfc3339_reads_back_as_the_same_event_time():
    for ms in (MIN_EVENT_MS, 1_291_191_960_123, MAX_EVENT_MS - 1):
        assert ShopEvent._event_time(rfc3339(ms)) == ms
