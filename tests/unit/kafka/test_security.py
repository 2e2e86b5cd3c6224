"""Kafka security from the settings (stream/kafka/security.py): parsing, secrets from
files, the options every client gets, and no secret in a repr, a log line or an error."""
import logging
import os
import shutil
import ssl
import subprocess
import sys

import pytest

from stream.kafka.security import KafkaSecurity
from stream.settings import BadSettings, Settings
from stream.worker.app import faust_credentials
from tests.fixtures.workers import Worker, fake_worker

SECRET = "s3cret-pass-do-not-print"


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_sasl_ssl_scram_from_a_password_file(tmp_path):
    (tmp_path / "password").write_text(SECRET + "\n")
    s = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                 kafka_sasl_username="memberstream", kafka_sasl_password_file=tmp_path / "password")
    options = s.kafka_security.aiokafka()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_username"] == "memberstream" and options["sasl_plain_password"] == SECRET
    assert isinstance(options["ssl_context"], ssl.SSLContext) and options["ssl_context"].check_hostname
    credentials = faust_credentials(s.kafka_security)["broker_credentials"]
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-256")
    for shown in (repr(s), str(s), repr(s.kafka_security), repr(credentials), str(s.model_dump())):
        assert SECRET not in shown


def test_plaintext_is_the_default_and_adds_nothing():
    assert settings().kafka_security.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings().kafka_security) == {}


@pytest.mark.parametrize("values, message", [
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": SECRET}, "needs a SASL username and password"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"}, "needs a SASL username and password"),
    ({"kafka_sasl_password_file": "/no/such/file"}, "MEMBERSTREAM_KAFKA_SASL_PASSWORD_FILE /no/such/file"),
    ({"kafka_ssl_keyfile": "/k.pem", "kafka_ssl_key_password": SECRET}, "needs its certificate"),
])
def test_what_does_not_fit_is_named_without_the_secret(values, message):
    with pytest.raises(BadSettings) as caught:
        settings(**values)
    assert message in str(caught.value) and SECRET not in str(caught.value)


def test_a_bad_setting_on_the_command_line_never_shows_a_secret():
    env = {**os.environ, "MEMBERSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "MEMBERSTREAM_KAFKA_SASL_PASSWORD": SECRET, "MEMBERSTREAM_PSEUDONYMIZATION_KEY": SECRET[:8]}
    result = subprocess.run([sys.executable, "-m", "stream.cli", "tail", "crm.segments"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "bad setting" in result.stderr and SECRET not in result.stderr + result.stdout
    assert SECRET[:8] not in result.stderr


def test_every_client_of_a_worker_gets_the_same_security(caplog):
    caplog.set_level(logging.DEBUG)
    worker: Worker = fake_worker(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
                                 kafka_sasl_username="u", kafka_sasl_password=SECRET)
    security = worker.settings.kafka_security
    assert worker.batcher.config["security"] == security and worker.batcher.security == security
    assert worker.watchdog.probe.security == security
    real = Worker(worker.settings, {}, "c")  # the real sender and refetcher, not started
    assert real.sender.security == security and real.refetcher.security == security
    assert SECRET not in caplog.text and SECRET not in repr(worker.batcher.config)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_mutual_tls_loads_the_ca_and_the_client_certificate(tmp_path):
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-subj", "/CN=memberstream", "-passout", f"pass:{SECRET}",
            "-keyout", "client.key", "-out", "client.csr")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", "client.pem")
    security = KafkaSecurity("SSL", cafile=tmp_path / "ca.pem", certfile=tmp_path / "client.pem",
                             keyfile=tmp_path / "client.key",
                             key_password=settings(kafka_ssl_key_password=SECRET).kafka_ssl_key_password)
    context = security.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    wrong = KafkaSecurity("SSL", cafile=tmp_path / "ca.pem", certfile=tmp_path / "client.pem",
                          keyfile=tmp_path / "client.key")
    with pytest.raises(ssl.SSLError) as caught:
        wrong.ssl_context()  # no password for the encrypted key
    assert SECRET not in str(caught.value)


class _Refused(Exception):
    pass


def test_replay_and_tail_connect_with_the_security(monkeypatch, tmp_path):
    """The command-line clients: their admin, producer and consumer all get the options."""
    import asyncio

    from stream.tools import replay, tail

    security = settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
                        kafka_sasl_password=SECRET).kafka_security
    seen = []

    def client(*args, **kwargs):
        seen.append(kwargs)
        raise _Refused()

    async def topics_made(bootstrap, partitions, names=(), security=None, replication=1):
        seen.append({"security": security})

    monkeypatch.setattr(replay, "ensure_topics", topics_made)
    monkeypatch.setattr(replay, "AIOKafkaProducer", client)
    monkeypatch.setattr(tail, "AIOKafkaConsumer", client)
    with pytest.raises(_Refused):
        asyncio.run(replay.replay(tmp_path / "x", "b:9092", 4, lines=[b"{}"], security=security))

    async def first():
        async for _ in tail.messages("b:9092", "crm.segments", security=security):
            break
    with pytest.raises(_Refused):
        asyncio.run(first())
    assert seen[0] == {"security": security}
    for kwargs in seen[1:]:
        assert (kwargs["security_protocol"], kwargs["sasl_plain_password"]) == ("SASL_PLAINTEXT", SECRET)
    assert len(seen) == 3


def test_a_secret_and_its_file_together_are_refused(tmp_path):
    (tmp_path / "p").write_text(SECRET)
    with pytest.raises(BadSettings, match="both set"):
        settings(kafka_sasl_password=SECRET, kafka_sasl_password_file=tmp_path / "p")


def test_a_child_gets_the_secret_itself_not_its_mask():
    from pydantic import SecretStr

    from stream.settings import environment
    assert environment(api_token=SecretStr(SECRET)) == {"MEMBERSTREAM_API_TOKEN": SECRET}


def test_a_worker_bound_to_all_addresses_advertises_one_it_can_be_reached_at(monkeypatch):
    import socket

    from stream.worker.app import advertised_host
    monkeypatch.setattr(socket, "gethostname", lambda: "worker-3")
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "10.1.2.3" if name == "worker-3" else None)
    assert advertised_host(settings(web_host="0.0.0.0", api_token="t" * 20)) == "10.1.2.3"
    assert advertised_host(settings(web_host="0.0.0.0", api_token="t" * 20, web_advertised_host="w3")) == "w3"
    assert advertised_host(settings()) == "127.0.0.1"
