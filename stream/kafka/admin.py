"""Every topic created explicitly, with the app's partition count.

Brokers that auto-create topics pick their own count (Tansu: 4), which would
break co-partitioning of events, outputs and the members changelog.
"""
from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.contract.topics import ALL


async def ensure_topics(bootstrap: str, partitions: int, names=ALL) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
    finally:
        await admin.close()
