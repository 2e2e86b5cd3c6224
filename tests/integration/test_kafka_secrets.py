"""Kafka credentials against a real broker that does not take them (the embedded
broker has no SASL user): the worker and `replay` fail as they should, and the
password shows nowhere, neither in their one-line errors nor in the worker's log
(debug level; it fails at its first client, the admin, before Faust starts)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stream.tools.launcher.process import spawn, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "kafka-password-never-shown-7f3a"
TOKEN = "api-token-never-shown-0123456789"


def _env(broker, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
    env.update({"MEMBERSTREAM_BROKER_URL": broker.url, "MEMBERSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "MEMBERSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "MEMBERSTREAM_KAFKA_SASL_USERNAME": "ms",
                "MEMBERSTREAM_KAFKA_SASL_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1", **extra})
    return env


def test_a_password_the_broker_refuses_is_never_printed(broker, tmp_path):
    log_file = tmp_path / "one.jsonl"
    log_file.write_text('{"event_id": "e", "member_id": "m", "type": "view", "item_id": "i", "ts": 1300000000000}\n')
    for args in (["replay", str(log_file), "--timeout", "3"],):  # tail: the same options, unit-tested
        cli = subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True, timeout=120,
                             env=_env(broker))
        err = cli.stderr.decode()
        assert cli.returncode != 0 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("memberstream: ") and PASSWORD not in err + cli.stdout.decode()

    worker = spawn("worker", [sys.executable, "-m", "stream.cli", "worker"], tmp_path,
                   env=_env(broker, MEMBERSTREAM_LOG_LEVEL="debug", MEMBERSTREAM_API_TOKEN=TOKEN,
                            MEMBERSTREAM_STATE_DIR=str(tmp_path / "state"),
                            MEMBERSTREAM_TRITON_URL="127.0.0.1:9", MEMBERSTREAM_EMBEDDED_BROKER="true"))
    try:
        wait_until(lambda: worker.popen.poll() is not None or len(worker.log_path.read_bytes()) > 2000, 60,
                   "the worker's first attempts")
    finally:
        worker.stop()
    log = worker.log_path.read_text()
    assert "SSL" in log or "ssl" in log or "Kafka" in log, log[-2000:]  # it tried, and said so
    assert PASSWORD not in log and TOKEN not in log
