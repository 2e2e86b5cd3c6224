"""The Faust application of one worker, built from Settings.

`build_app` makes the `faust.App`, its members table and the `Worker` that
owns every component (stream/worker/worker.py), and registers the agent,
tasks and pages that run it. Nothing here happens at import.
"""
from __future__ import annotations

import faust

from stream.kafka.broker import broker_profile
from stream.settings import Settings
from stream.worker import agents, web
from stream.worker.tables import members_table
from stream.worker.worker import Worker


def build_app(settings: Settings) -> tuple[faust.App, Worker]:
    broker = broker_profile(settings)
    if broker.prepare_faust is not None:
        broker.prepare_faust()
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        datadir=str(settings.state_dir / "faust"),
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5000,
        stream_buffer_maxsize=20000,
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=262144,
        **broker.faust_settings,
    )
    members = members_table(app, settings)
    worker = Worker(settings, members.data, members.changelog_topic.get_topic_name(),
                    crashed=lambda: app.crash_reason if app._crashed.is_set() else None)
    watcher = agents.register(app, worker)
    web.register(app, worker, members, watcher)
    return app, worker
