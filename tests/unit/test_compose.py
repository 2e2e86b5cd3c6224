"""docker-compose.yml is valid for the compose validator, when one is installed."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose (Debian package) not installed")
def test_compose_file_validates_and_has_the_stack():
    run = lambda *a: subprocess.run([COMPOSE, "-f", str(ROOT / "docker-compose.yml"), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60, cwd=ROOT)
    result = run("config", "-q")
    assert result.returncode == 0, result.stderr
    services = run("--profile", "replay", "config", "--services").stdout.split()
    assert sorted(services) == ["grafana", "kafka", "prometheus", "replay", "triton", "worker"]
    parsed = yaml.safe_load(run("--profile", "replay", "config").stdout)["services"]
    assert [name for name, service in parsed.items() if "healthcheck" not in service] == []
    config = run("config").stdout
    assert "capabilities:\n            - gpu" in config and "KAFKA_PROCESS_ROLES: broker,controller" in config
    assert "--model-config-name=gpu" in config  # the GPU it reserves serves configs/gpu.pbtxt
    # Safe defaults (SECURITY.md): Kafka and Triton only on the internal network and with no
    # published port; the workers need a token and pseudonymise; a read-only model repository.
    full = yaml.safe_load(run("--profile", "replay", "config").stdout)
    assert full["networks"]["backend"]["internal"] is True
    for name in ("kafka", "triton"):
        assert list(parsed[name]["networks"]) == ["backend"] and "ports" not in parsed[name], name
    env = parsed["worker"]["environment"]
    assert env["MEMBERSTREAM_API_TOKEN_FILE"] == "/run/secrets/api_token"
    assert env["MEMBERSTREAM_PSEUDONYMIZATION_KEY_FILE"] == "/run/secrets/pseudonymization_key"
    assert "secrets" not in parsed["replay"] and "MEMBERSTREAM_API_TOKEN_FILE" not in parsed["replay"]["environment"]
    assert "ports" not in parsed["worker"]
    assert [v for v in parsed["triton"]["volumes"] if v.endswith("/triton_repo:/models:ro")]
    assert "--model-control-mode=explicit" in config


def test_prometheus_scrapes_the_workers_and_grafana_has_its_dashboard():
    prometheus = yaml.safe_load((ROOT / "docker/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["memberstream-workers"]["dns_sd_configs"][0] == {
        "names": ["worker"], "type": "A", "port": 6066, "refresh_interval": "15s"}
    assert jobs["triton"]["static_configs"][0]["targets"] == ["triton:8002"]
    import json
    dashboard = json.loads((ROOT / "docker/grafana/dashboards/memberstream.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in ("memberstream_input_events_total", "memberstream_outputs_total",
                   "memberstream_consumer_lag_records", "memberstream_event_time_lag_seconds",
                   "memberstream_triton_request_duration_seconds_bucket", "memberstream_health",
                   "memberstream_event_loop_lag_seconds_bucket", "memberstream_gc_pause_seconds_sum"):
        assert metric in exprs, metric
