"""The Faust application of one worker, built from Settings.

`build_app` makes the `faust.App`, its members table and the `Worker` that
owns every component (stream/worker/worker.py), and registers the agent,
tasks and pages that run it. Nothing here happens at import.
"""
from __future__ import annotations

import socket

import faust

from stream.kafka.broker import broker_profile
from stream.kafka.security import KafkaSecurity
from stream.settings import BadSettings, Settings
from stream.worker import agents, web
from stream.worker.access import Access, check_binding
from stream.worker.tables import members_table
from stream.worker.worker import Worker


def advertised_host(settings: Settings) -> str:
    """Where other workers reach this one: 0.0.0.0 is no address to send a request to."""
    if settings.web_advertised_host:
        return settings.web_advertised_host
    if settings.web_host in ("0.0.0.0", "::", ""):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return socket.gethostname()
    return settings.web_host


def faust_credentials(security: KafkaSecurity) -> dict:
    """faust.App's broker credentials: the same as every other client's."""
    if security.sasl:
        return {"broker_credentials": faust.SASLCredentials(
            username=security.username, password=security.password.get_secret_value(),
            ssl_context=security.ssl_context(), mechanism=security.mechanism)}
    if security.tls:
        return {"broker_credentials": faust.SSLCredentials(security.ssl_context())}
    return {}


def build_app(settings: Settings) -> tuple[faust.App, Worker]:
    refused = check_binding(settings.web_host, settings.api_token)
    if refused is not None:
        raise BadSettings(refused)
    broker = broker_profile(settings)
    if broker.prepare_faust is not None:
        broker.prepare_faust()
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication_factor,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        canonical_url=f"http://{advertised_host(settings)}:{settings.web_port}",
        datadir=str(settings.state_dir / "faust"),
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5000,
        stream_buffer_maxsize=20000,
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=262144,
        **broker.faust_settings,
        **faust_credentials(settings.kafka_security),
        web_application_options={"middlewares": [Access(settings.api_token, settings.api_open_paths).middleware]},
    )
    members = members_table(app, settings)
    worker = Worker(settings, members.data, members.changelog_topic.get_topic_name(),
                    crashed=lambda: app.crash_reason if app._crashed.is_set() else None)
    watcher = agents.register(app, worker)
    web.register(app, worker, members, watcher)
    return app, worker
