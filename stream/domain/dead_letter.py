"""Dead letters: the original bytes, untouched, with headers naming the error.

The value stays the original record, so the id is a header: `dead_letter_id`
names the source record (topic, partition, offset and its bytes), and a record
dead-lettered again after a restart has the id it had. The bytes count too: a
topic recreated with the same name starts its offsets again.
"""
from __future__ import annotations

import hashlib
from typing import Optional

from stream.domain.event_time import now_rfc3339
from stream.domain.message_id import message_id
from stream.domain.parsing import Rejected


def dead_letter_id(topic: str, partition: int, offset: int, value: Optional[bytes]) -> str:
    digest = None if value is None else hashlib.sha256(value).hexdigest()
    return message_id("dead-letter", topic, partition, offset, digest)


def dead_letter_headers(rejected: Rejected, topic: str, partition: int, offset: int,
                        value: Optional[bytes]) -> list[tuple[str, bytes]]:
    return [
        ("dead_letter_id", dead_letter_id(topic, partition, offset, value).encode()),
        ("error", rejected.code.encode()),
        ("error_detail", rejected.detail.encode()[:1024]),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("rejected_at", now_rfc3339().encode()),
    ]
