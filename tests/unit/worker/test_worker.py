"""The Worker (stream/worker/worker.py): every component built from its own
Settings, so several live in one process without sharing anything."""
from stream.contract import topics
from stream.settings import Settings
from stream.worker.worker import Worker
from tests.fixtures.events import T0, event, messages
from tests.fixtures.workers import fake_worker, run


def test_two_workers_with_different_settings_live_in_one_process():
    """Built for real (nothing connects before `start`): each from its own settings."""
    framed = Worker(Settings(_env_file=None, app_id="shop-a", partitions=8, batch_max_frames=4,
                             batches_in_flight=2), {}, "shop-a-members-changelog")
    direct = Worker(Settings(_env_file=None, app_id="shop-b", frames=False, batch_max_events=500,
                             embedded_broker=True, tansu_fetch_max_wait_ms=7, triton_url="127.0.0.1:9001"),
                    {}, "shop-b-members-changelog")
    assert (framed.input_topic, direct.input_topic) == ("shop-a-shop-events-frames", topics.SHOP_EVENTS)
    assert (framed.batch, direct.batch) == (4, 500)
    assert (framed.batcher.group, framed.batcher.target) == ("shop-a-batcher", "shop-a-shop-events-frames")
    assert (framed.scorer.url, direct.scorer.url) == ("127.0.0.1:8001", "127.0.0.1:9001")
    assert (framed.commit.changelog_topic, direct.commit.changelog_topic) == (
        "shop-a-members-changelog", "shop-b-members-changelog")
    # The broker's workarounds follow each worker's own settings: Apache Kafka's client
    # defaults for one, the embedded broker's for the other.
    assert framed.broker.end_marker is None and direct.broker.end_marker is not None
    assert (framed.refetcher.fetch_max_wait_ms, direct.refetcher.fetch_max_wait_ms) == (500, 7)
    assert (framed.batcher.session_timeout_ms, direct.batcher.session_timeout_ms) == (10_000, 6_000)
    assert (framed.batcher.heartbeat_interval_ms, direct.batcher.heartbeat_interval_ms) == (3_000, 500)
    assert framed.decisions.slots._value == 2 and direct.decisions.slots._value == 3
    for part in ("processor", "cursor", "applying", "commit", "decisions", "intake", "waits",
                 "sender", "scorer", "refetcher", "batcher"):
        assert getattr(framed, part) is not getattr(direct, part), part


def test_what_one_worker_applies_the_other_does_not_see():
    a, b = fake_worker(frames=False), fake_worker(frames=False, app_id="other")

    async def go():
        await a.take(messages(0, 0, [event("m", 0, ts=T0), event("m", 1, ts=T0 + 1)]))
        await a.decisions.drained()
        await a.commit.commit()

    run(go())
    assert a.processor.totals["events"] == 2 and a.cursor.next == {0: 2} and a.members() == 1
    assert b.processor.totals["events"] == 0 and b.cursor.next == {} and b.members() == 0
    assert b.processor.state("m") is None and b.sender.calls == []
