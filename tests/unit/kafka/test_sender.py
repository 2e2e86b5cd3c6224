"""BatchSender's retries (stream/kafka/sender.py), on a stand-in producer whose
deliveries fail as a broker's do; the real broker's batches: tests/integration/test_sender.py."""
import asyncio
import logging

import pytest
from aiokafka.errors import NotLeaderForPartitionError, RecordTooLargeError, RequestTimedOutError

from stream.kafka import sender as sender_module
from stream.kafka.sender import BatchSender
from tests.fixtures.workers import run


class Builder:
    def __init__(self):
        self.records = []

    def append(self, timestamp, key, value, headers):
        self.records.append((key, value))
        return object()


class Producer:
    """Each send_batch's future fails with the next of `failures`, then succeeds."""

    def __init__(self, failures):
        self.failures = list(failures)
        self.sent = []

    def create_batch(self):
        return Builder()

    async def send_batch(self, batch, topic, partition):
        self.sent.append((topic, partition, list(batch.records)))
        future = asyncio.get_running_loop().create_future()
        if self.failures:
            future.set_exception(self.failures.pop(0))
        else:
            future.set_result(len(self.sent))
        return future


def _sender(failures, give_up_s=120.0):
    s = BatchSender("unused:9092", 0.0, give_up_s=give_up_s)
    s.started, s.producer = True, Producer(failures)
    return s


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(sender_module, "RETRY_BASE_S", 0.001)
    monkeypatch.setattr(sender_module, "RETRY_MAX_S", 0.004)


def test_retriable_delivery_errors_are_sent_again_until_delivered(caplog):
    failures = [NotLeaderForPartitionError(), RequestTimedOutError()] * 10
    s = _sender(failures)

    async def go():
        [future] = await s.send([("out", b"k", b"v1", 3, None), ("out", b"k", b"v2", 3, None)])
        return await asyncio.wait_for(future, 5)

    with caplog.at_level(logging.WARNING, logger="stream.kafka.sender"):
        assert run(go()) == 21  # the 21st try delivered
    assert s.retries == 20
    assert [records for _, _, records in s.producer.sent] == [[(b"k", b"v1"), (b"k", b"v2")]] * 21
    assert {(t, p) for t, p, _ in s.producer.sent} == {("out", 3)}
    assert len(caplog.records) == 1 and "sending again with backoff" in caplog.records[0].getMessage()


def test_a_lasting_or_non_retriable_error_fails_the_delivery():
    async def go(s):
        [future] = await s.send([("out", b"k", b"v", 0, None)])
        with pytest.raises(Exception) as raised:
            await asyncio.wait_for(future, 5)
        return raised.value

    s = _sender([RecordTooLargeError()] + [NotLeaderForPartitionError()])
    assert isinstance(run(go(s)), RecordTooLargeError) and s.retries == 0
    s = _sender([NotLeaderForPartitionError()] * 1000, give_up_s=0.05)
    assert isinstance(run(go(s)), NotLeaderForPartitionError) and 3 <= s.retries < 1000
