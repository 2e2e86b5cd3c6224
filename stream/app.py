"""The Faust application, configured from Settings; agents live in their own modules."""
from __future__ import annotations

import faust

from . import tansu_quirks
from .settings import Settings

settings = Settings()

_extra = {}
if settings.embedded_broker:
    tansu_quirks.apply(settings.tansu_fetch_max_wait_ms)
    _extra = tansu_quirks.FAUST_SETTINGS

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
    **_extra,
)
