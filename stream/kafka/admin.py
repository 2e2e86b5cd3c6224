"""Every topic created explicitly, with the app's partition count.

Brokers that auto-create topics pick their own count (Tansu: 4), which would
break co-partitioning of events, outputs and the members changelog.
"""
from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stream.contract.topics import ALL
from stream.kafka.security import PLAINTEXT, KafkaSecurity


class BrokerUnreachable(ConnectionError):
    """A client could not connect to the broker at all (the message says where)."""


async def started(client, bootstrap: str) -> None:
    """Start an aiokafka client (producer, consumer, admin); BrokerUnreachable, with
    the client closed again, when the broker cannot be reached."""
    try:
        await client.start()
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise BrokerUnreachable(f"cannot reach the Kafka broker at {bootstrap} ({type(exc).__name__}); "
                                "is it running? (`memberstream up` starts one)") from None


def missing_topics(existing, names, partitions: int, replication: int = 1) -> list[NewTopic]:
    """The topics of `names` not among `existing`, as they are created."""
    return [NewTopic(n, partitions, replication) for n in dict.fromkeys(names) if n not in set(existing)]


async def ensure_topics(bootstrap: str, partitions: int, names=ALL, security: KafkaSecurity = PLAINTEXT,
                        replication: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **security.aiokafka())
    await started(admin, bootstrap)
    try:
        missing = missing_topics(await admin.list_topics(), names, partitions, replication)
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
    finally:
        await admin.close()
