"""What the processor emits besides state: dead letters, anomalies and output JSON,
its labelled counts, and the hook through which it reports Triton requests."""
from __future__ import annotations

import logging
from typing import Optional

import orjson

from stream.contract import topics
from stream.domain.dead_letter import dead_letter_headers, minimised
from stream.domain.parsing import Rejected
from stream.processing.records import BatchResult, Outgoing, Record

log = logging.getLogger(__name__)


def _dead_letter(out: BatchResult, rec: Record, rejected: Rejected, event_type: str = "unknown",
                 privacy=None) -> None:
    """The record to the dead-letter topic: its bytes untouched, headers naming why; with
    `privacy` (a Pseudonymizer) minimised, its key the pseudonym (stream/domain/dead_letter.py)."""
    if privacy is None:
        headers = dead_letter_headers(rejected, topics.SHOP_EVENTS, rec.partition, rec.offset, rec.value)
        out.outputs.append(Outgoing(topics.DEAD_LETTER, rec.key, rec.value, headers))
    else:
        headers = dead_letter_headers(rejected, topics.SHOP_EVENTS, rec.partition, rec.offset, rec.value,
                                      privacy.digest) + [("minimised", b"true")]
        key = None if rec.key is None else privacy(rec.key).encode()
        out.outputs.append(Outgoing(topics.DEAD_LETTER, key, minimised(rec.value, privacy, rejected.code), headers))
    out.counts["dead_lettered"] += 1
    out.counts[(DEAD_LETTERS, rejected.code)] += 1
    out.counts[(INPUT, event_type, "dead_lettered")] += 1
    # The code only: a detail may quote the record, and with it a member id.
    log.warning("input record dead-lettered (%s)", rejected.code,
                extra={"topic": topics.SHOP_EVENTS, "partition": rec.partition, "offset": rec.offset,
                       "reason": rejected.code})


def _anomaly(out: BatchResult, anomaly) -> None:
    if anomaly is not None:
        out.outputs.append(Outgoing(topics.ANOMALIES, anomaly.member_id.encode(), _json(anomaly)))
        out.counts["anomalies"] += 1


def _json(message) -> bytes:
    """An output message: a dict already in contract form, or a pydantic model."""
    return orjson.dumps(message if isinstance(message, dict) else message.model_dump(mode="json"))


# Labelled counts, beside the plain ones in `BatchResult.counts`: (INPUT, event type,
# outcome) per input record, (DEAD_LETTERS, reason code) per dead letter. The event type
# is "unknown" for a record that is no event.
INPUT = "input"
DEAD_LETTERS = "dead_letters"


class NoTelemetry:
    """Where the processor reports each Triton request (the worker's is Prometheus')."""

    def scoring_request(self, rows: int, seconds: float, error: Optional[str]) -> None:
        """`rows` sent, the request's seconds, and the failure's kind (None: answered)."""

    def batch(self, records: int) -> None:
        """A batch of `records` input records prepared."""
