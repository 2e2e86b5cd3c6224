"""The members table: member id -> serialised MemberState, backed by a changelog.

The worker writes each touched member once per commit (a record cache in the
spirit of Kafka Streams, stream/processing/commit.py), so repeated events of
one member cost one changelog record, not one each. Its bookkeeping records
(stream/processing/keys.py) share the table.
"""
from __future__ import annotations

import faust

from stream.settings import Settings


def members_table(app: faust.App, settings: Settings) -> faust.Table:
    return app.Table("members", key_type=bytes, value_type=bytes, partitions=settings.partitions,
                     help="member id -> MemberState bytes")
