"""The members table: member id -> serialised MemberState, backed by a changelog.

The ingest agent writes each touched member once per batch (a record cache
in the spirit of Kafka Streams), so repeated events of one member cost one
changelog record, not one each.
"""
from .app import app, settings

members = app.Table(
    "members",
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    help="member id -> MemberState bytes",
)
