"""docs/examples/crm_consumer.py, the CRM-side example (docs/compose.md), against the
real broker after a replay of the excerpt through a real worker and Triton: it
validates every churn alert against schemas/, drops nothing valid, and prints the
expected member's alert; a message that breaks the schema makes it exit 1. The
worker runs with JSON-lines logs: its dead-letter line names topic, partition,
offset and reason."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stream.contract import topics
from stream.tools.launcher import start_broker
from tests.fixtures.expected import expected_alerts
from tests.fixtures.paths import ROOT

from .conftest import Cluster, excerpt_lines

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "docs" / "examples" / "crm_consumer.py"


def consume(bootstrap: str, count: int, group: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE), "--bootstrap", bootstrap, "--topic", topics.CHURN_ALERTS,
                           "--from-beginning", "--count", str(count), "--group", group, "--idle", "20"],
                          capture_output=True, text=True, timeout=120)


def test_the_example_consumer_validates_the_alerts_and_rejects_a_broken_one(triton, tmp_path):
    pytest.importorskip("jsonschema")
    broker = start_broker(tmp_path / "broker")
    cluster = Cluster(broker, triton, tmp_path)
    try:
        worker = cluster.start_worker(log_format="json")
        cluster.wait_processed(worker, cluster.replay(excerpt_lines()))
        # (Faust's spinner may put terminal escapes before a line.)
        logged = [json.loads(line[line.index("{"):]) for line in worker.process.log_path.read_text().splitlines()
                  if "{" in line]
        dead = [x for x in logged if x["message"].startswith("input record dead-lettered")]
        assert dead and {"topic", "partition", "offset", "reason", "time", "level"} <= set(dead[0])
        assert dead[0]["topic"] == topics.SHOP_EVENTS and isinstance(dead[0]["offset"], int)
        alerts = int(worker.metrics()["memberstream_alerts_total"])
        done = consume(broker.bootstrap, alerts, "crm-a")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == alerts == len(expected_alerts())
        assert {line.split()[1] for line in lines} == {member for member, _, _ in expected_alerts()}
        assert f"{alerts} messages, 0 invalid" in done.stderr
        # A message without its required fields, on the alert topic: reported, exit 1.
        cluster.send([(b"x", b'{"member_id": "x"}')], topic=topics.CHURN_ALERTS)
        broken = consume(broker.bootstrap, alerts + 1, "crm-b")
        assert broken.returncode == 1 and "INVALID crm.churn-alerts" in broken.stderr
        assert f"{alerts} messages, 1 invalid" in broken.stderr
    finally:
        cluster.stop()
        broker.process.stop()
