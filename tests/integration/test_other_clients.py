"""The topic contract through Kafka clients no one here wrote: confluent-kafka (the
librdkafka wheel) and Debian's kcat publish the excerpt to shop.events and read the
alerts back; the alerts are the ones the aiokafka replay gets (tests/fixtures/expected.py).

librdkafka before 2.2.0 cannot read the embedded broker's ApiVersions v3 answer
(README, "Kafka clients"): Debian's kcat links librdkafka 2.0.2, so it runs here on
the confluent-kafka wheel's librdkafka (ABI-compatible), by LD_LIBRARY_PATH.
Both use `partitioner=murmur2_random`: librdkafka's default hashes keys differently
from Java and aiokafka, which would split a member's events over two partitions in
a shop with producers of both kinds."""
from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stream.contract import topics
from stream.kafka.admin import ensure_topics
from stream.tools.launcher import start_broker
from tests.fixtures.expected import expected_alert_id, expected_alerts

from .conftest import Cluster, excerpt_lines

pytestmark = pytest.mark.integration
ck = pytest.importorskip("confluent_kafka")
MEMBER = "12707"
KCAT = shutil.which("kcat")


def keyed(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    """(member_id or None, line), as the replay keys them; a malformed line goes unkeyed."""
    out = []
    for line in lines:
        try:
            member = json.loads(line).get("member_id")
        except (ValueError, AttributeError):
            member = None
        out.append((member.encode() if isinstance(member, str) else None, line))
    return out


def alerts_of(messages: list[bytes]) -> set:
    alerts = [json.loads(m) for m in messages]
    assert {a["alert_id"] for a in alerts if a["member_id"] == MEMBER} == {expected_alert_id(MEMBER)}
    return {(a["member_id"], a["event_time"], tuple(r["code"] for r in a["reasons"])) for a in alerts}


@pytest.fixture
def stack(triton, tmp_path):
    broker = start_broker(tmp_path / "broker")
    cluster = Cluster(broker, triton, tmp_path)
    try:
        asyncio.run(ensure_topics(broker.bootstrap, cluster.partitions, names=topics.ALL))
        yield cluster, cluster.start_worker()
    finally:
        cluster.stop()
        broker.process.stop()


def test_confluent_kafka_publishes_events_and_reads_the_alerts(stack):
    cluster, worker = stack
    bootstrap = cluster.broker.bootstrap
    producer = ck.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all",
                            "enable.idempotence": False})
    failed = []
    records = keyed(excerpt_lines())
    for key, value in records:
        producer.produce(topics.SHOP_EVENTS, value=value, key=key,
                         on_delivery=lambda err, msg: err and failed.append(err))
    assert producer.flush(30) == 0 and failed == []
    cluster.wait_processed(worker, len(records))
    expected = int(worker.metrics()["memberstream_alerts_total"])
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "crm-test", "enable.auto.commit": False})
    try:
        # Assigned, not subscribed: every partition from its start, without a group join.
        parts = consumer.list_topics(topics.CHURN_ALERTS, timeout=10).topics[topics.CHURN_ALERTS].partitions
        consumer.assign([ck.TopicPartition(topics.CHURN_ALERTS, p, ck.OFFSET_BEGINNING) for p in parts])
        got = []
        for _ in range(120):
            if len(got) >= expected:
                break
            got += [m.value() for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    assert len(got) == expected and alerts_of(got) == expected_alerts()


@pytest.fixture
def librdkafka_dir(tmp_path) -> Path:
    """A folder holding the confluent-kafka wheel's librdkafka as librdkafka.so.1."""
    [lib] = glob.glob(str(Path(ck.__file__).parent.parent / "confluent_kafka.libs" / "librdkafka-*.so.1"))
    folder = tmp_path / "librdkafka"
    folder.mkdir()
    (folder / "librdkafka.so.1").symlink_to(lib)
    return folder


@pytest.mark.skipif(KCAT is None, reason="Debian's kcat is not installed (make test installs it)")
def test_kcat_publishes_events_and_reads_the_alerts(stack, librdkafka_dir, tmp_path):
    cluster, worker = stack
    env = {**os.environ, "LD_LIBRARY_PATH": str(librdkafka_dir)}
    version = subprocess.run([KCAT, "-V"], env=env, capture_output=True, text=True, timeout=30).stdout
    [found] = re.findall(r"librdkafka (\d+)\.(\d+)", version)
    assert tuple(map(int, found)) >= (2, 2), version  # the wheel's, not Debian's 2.0.2
    base = [KCAT, "-b", cluster.broker.bootstrap, "-X", "partitioner=murmur2_random"]
    records = keyed(excerpt_lines())
    keyed_only = [(k, v) for k, v in records if k is not None]  # kcat's -K needs a key on every line
    assert all(b"\t" not in k + v for k, v in keyed_only)
    data = tmp_path / "events.tsv"
    data.write_bytes(b"".join(k + b"\t" + v + b"\n" for k, v in keyed_only))
    subprocess.run(base + ["-P", "-t", topics.SHOP_EVENTS, "-K", "\t", "-l", str(data)], env=env,
                   check=True, timeout=60, capture_output=True)
    cluster.wait_processed(worker, len(keyed_only))
    expected = int(worker.metrics()["memberstream_alerts_total"])
    out = subprocess.run(base + ["-C", "-t", topics.CHURN_ALERTS, "-o", "beginning", "-e", "-q", "-D", "\n"],
                         env=env, check=True, timeout=60, capture_output=True).stdout
    got = [line for line in out.split(b"\n") if line.strip()]
    assert len(got) == expected and alerts_of(got) == expected_alerts()


@pytest.mark.skipif(KCAT is None, reason="Debian's kcat is not installed (make test installs it)")
def test_debians_own_librdkafka_cannot_read_the_embedded_brokers_api_versions(tmp_path):
    """The reason above, kept true: once this fails, kcat works here on its own library."""
    broker = start_broker(tmp_path / "broker")
    try:
        env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        done = subprocess.run([KCAT, "-b", broker.bootstrap, "-L", "-m", "3"], env=env,
                              capture_output=True, text=True, timeout=60)
    finally:
        broker.process.stop()
    assert done.returncode != 0 and "Read underflow" in done.stderr, done.stderr
