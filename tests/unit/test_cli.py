"""The CLI says what is wrong in one line, without a traceback."""
import os
import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


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


@pytest.mark.parametrize("variable, value, message", [
    ("MEMBERSTREAM_PARTITIONS", "0", "MEMBERSTREAM_PARTITIONS: Input should be greater than or equal to 1 (got '0')"),
    ("MEMBERSTREAM_INACTIVITY_CHECKPOINTS_DAYS", "[7, 0]", "checkpoint days must be at least 1 (got [7, 0])"),
    ("MEMBERSTREAM_TRITON_TIMEOUT_S", "soon", "MEMBERSTREAM_TRITON_TIMEOUT_S: Input should be a valid number"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(variable, value, message):
    result = run("make-log", env={**os.environ, variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
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
