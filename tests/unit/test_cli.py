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


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [("replay", "LOG"), ("tail", "crm.churn-alerts")])
def test_an_unreachable_broker_is_one_line_and_exit_2(tmp_path, command):
    log = tmp_path / "one.jsonl"
    log.write_text('{"event_id": "e1"}\n')
    port = _closed_port()
    env = {**os.environ, "MEMBERSTREAM_BROKER_URL": f"kafka://127.0.0.1:{port}"}
    result = run(*[str(log) if a == "LOG" else a for a in command], env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"memberstream: cannot reach the Kafka broker at 127.0.0.1:{port} (KafkaConnectionError); "
        "is it running? (`memberstream up` starts one)"], result.stderr


@pytest.mark.parametrize("content, line, why", [
    (b"\x00\x01\x02binary\xff\xfe\n" * 3, 1, "not JSON: str is not valid UTF-8"),
    (b'{"a": 1}\n\n{"b": 2}\nwhat json\n{"c": 3}\n', 4, "not JSON: unexpected character"),
    (b'{"a": 1}\n[1, 2]\n', 2, "not a JSON object"),
])
def test_replay_refuses_a_file_that_is_not_json_lines_naming_its_first_bad_line(tmp_path, content, line, why):
    """Before any connection: the broker's address is one nothing listens on."""
    log = tmp_path / "x.jsonl"
    log.write_bytes(content)
    env = {**os.environ, "MEMBERSTREAM_BROKER_URL": f"kafka://127.0.0.1:{_closed_port()}"}
    result = run("replay", str(log), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"memberstream: {log} is not JSON lines: line {line} is {why}"), \
        result.stderr
    assert lines[0].endswith("--as-is sends such lines unchecked, for the worker to dead-letter")


def test_every_command_has_help_that_says_what_it_does():
    from typer.main import get_command
    from typer.testing import CliRunner

    from stream.cli import cli

    commands = get_command(cli).commands
    assert {"up", "worker", "replay", "tail", "train", "export", "evaluate", "evaluate-stream", "bench",
            "demo", "make-log", "schemas"} <= set(commands)
    for name, command in commands.items():
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, name
        assert command.help and len(command.help.split()) >= 4, name  # a sentence, not a stub
