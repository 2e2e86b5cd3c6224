"""Dead letters: the original bytes, untouched, with headers naming the error."""
from __future__ import annotations

from stream.domain.event_time import now_rfc3339
from stream.domain.parsing import Rejected


def dead_letter_headers(rejected: Rejected, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    return [
        ("error", rejected.code.encode()),
        ("error_detail", rejected.detail.encode()[:1024]),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("rejected_at", now_rfc3339().encode()),
    ]
