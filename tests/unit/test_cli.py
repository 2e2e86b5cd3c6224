"""The CLI says what is wrong in one line, without a traceback."""
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (("replay", "/no/such/log.jsonl"), "log file not found: /no/such/log.jsonl"),
    (("export", "--checkpoint", "/no/such.pt"), "checkpoint not found: /no/such.pt"),
    (("demo", "--log", "/no/such/log.jsonl"), "log file not found: /no/such/log.jsonl"),
    (("replay", "x.jsonl", "--rate", "5", "--speed", "2"), "give at most one of --max, --speed, --rate"),
    (("tail", "crm.segments", "--count", "0"), "Invalid value for '--count'"),
    (("replay", "--bogus"), "No such option: --bogus"),
    (("nonsense",), "No such command 'nonsense'"),
    (("evaluate", "movielens"), "unknown data set 'movielens'; choose from yoochoose, cdnow"),
    (("evaluate", "cdnow", "--predictions", "/"), "/ is a directory, expected a file path"),
])
def test_errors_are_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("up", "worker", "replay", "tail", "train", "export", "demo", "schemas", "evaluate"):
        assert command in result.stdout


def test_evaluate_names_a_missing_data_directory(tmp_path):
    import os
    env = {**os.environ, "MEMBERSTREAM_DATA_DIR": str(tmp_path / "nowhere")}
    result = subprocess.run([sys.executable, "-m", "stream.cli", "evaluate", "cdnow"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"memberstream: data file not found: {tmp_path}/nowhere/cdnow/"
                                      "CDNOW_master.txt (set MEMBERSTREAM_DATA_DIR)")
