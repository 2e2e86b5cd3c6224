"""`memberstream up` in one terminal; `replay` and `tail` in another find it with no configuration."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import orjson
import pytest

from stream.tools.launcher import wait_until

from .conftest import EXCERPT, ROOT

pytestmark = pytest.mark.integration


def test_up_then_replay_and_tail_from_another_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
    env["MEMBERSTREAM_TRITON_REPO"] = str(ROOT / "triton_repo")
    cli = [sys.executable, "-m", "stream.cli"]
    up = subprocess.Popen([*cli, "up"], cwd=tmp_path, env={**env, "PYTHONUNBUFFERED": "1"},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        for line in up.stdout:
            out.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(out)
        pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        assert len(pids) == 3, text
        stack_env = (tmp_path / ".memberstream" / "stack.env").read_text()
        assert re.search(r"MEMBERSTREAM_WEB_URL=http://127\.0\.0\.1:\d+", stack_env)

        client = lambda *a: subprocess.run([*cli, *a], cwd=tmp_path, env=env, capture_output=True,  # noqa: E731
                                           text=True, timeout=120)
        refused = client("replay", str(EXCERPT))  # it holds a line that is not JSON, for the DLQ
        assert refused.returncode == 2 and "is not JSON lines: line 51 is not JSON" in refused.stderr, refused.stderr
        sent = client("replay", str(EXCERPT), "--max", "--as-is")
        assert sent.returncode == 0 and "sent 927 events" in sent.stdout, sent.stderr
        tail = client("tail", "shop.events.dlq", "--from-beginning", "--count", "22", "--envelope")
        assert tail.returncode == 0, tail.stderr
        dead = [orjson.loads(line) for line in tail.stdout.splitlines()]
        assert len(dead) == 22 and all(d["topic"] == "shop.events.dlq" for d in dead)
        assert sum(d["headers"]["error"] == "NOT_JSON" for d in dead) == 1
        alerts = client("tail", "crm.churn-alerts", "--from-beginning", "--count", "6", "--json")
        assert sorted(orjson.loads(l)["member_id"] for l in alerts.stdout.splitlines()) == [
            "12707", "14162", "15326", "16587", "16781", "17848"]
        # Readable by default: one line per alert, its place, member, probability and reasons.
        shown = client("tail", "crm.churn-alerts", "--from-beginning", "--count", "6").stdout.splitlines()
        by_member = {orjson.loads(l)["member_id"]: orjson.loads(l) for l in alerts.stdout.splitlines()}
        assert len(shown) == 6
        for text in shown:
            member = re.search(r"member (\d+)", text).group(1)
            a = by_member[member]
            assert text.startswith("crm.churn-alerts[") and f"p={a['churn_probability']:.2f}" in text
            assert ",".join(r["code"] for r in a["reasons"]) in text
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    assert up.returncode == 0
    for pid in pids:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 5, f"pid {pid} to end")
    assert not (tmp_path / ".memberstream" / "stack.env").exists()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] == "Z"
    except FileNotFoundError:
        return True
