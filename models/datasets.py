"""Real public data sets (../shared/data) as member event histories.

Every loader returns `MemberEvent`s sorted by (member, time, source order),
and `contract_events` turns them into input events of the topic contract
(DESIGN.md section 3), so the replayed logs and the training data are the
same records.
"""
from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

ONLINE_RETAIL = "online-retail/online-retail-2010-12-01_2011-05-31.csv.gz"


class DataError(Exception):
    """A data set is missing or not in the expected format."""


@dataclass(frozen=True, slots=True)
class MemberEvent:
    event_id: str
    member_id: str
    ts: float  # epoch seconds, event time
    item_id: str
    type: str
    quantity: int = 1
    price: float | None = None
    session_id: str | None = None


def _open_data(data_dir: Path, relative: str) -> Path:
    path = Path(data_dir) / relative
    if not path.is_file():
        raise DataError(f"data file not found: {path} (set MEMBERSTREAM_DATA_DIR)")
    return path


def online_retail(data_dir: Path, until: datetime | None = None,
                  include_cancellations: bool = False) -> list[MemberEvent]:
    """UCI Online Retail lines of known customers as purchase events.

    Each invoice line is one purchase event; the invoice is the session.
    Cancellations (InvoiceNo 'C...', negative quantity) are left out unless
    asked for: the contract has no event type for them.
    """
    path = _open_data(data_dir, ONLINE_RETAIL)
    limit = until.timestamp() if until else None
    events: list[MemberEvent] = []
    line_no: dict[str, int] = {}
    with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            customer = row["CustomerID"].strip()
            if not customer:
                continue  # a guest: no member to follow
            invoice = row["InvoiceNo"]
            cancelled = invoice.startswith("C")
            if cancelled and not include_cancellations:
                continue
            ts = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=timezone.utc).timestamp()
            if limit is not None and ts > limit:
                continue
            n = line_no[invoice] = line_no.get(invoice, -1) + 1
            events.append(MemberEvent(
                event_id=f"or-{invoice}-{n}", member_id=customer.removesuffix(".0"), ts=ts,
                item_id=row["StockCode"].strip(), type="purchase", quantity=int(row["Quantity"]),
                price=float(row["UnitPrice"]), session_id=invoice))
    return sort_events(events)


def sort_events(events: Iterable[MemberEvent]) -> list[MemberEvent]:
    indexed = list(enumerate(events))
    indexed.sort(key=lambda p: (p[1].member_id, p[1].ts, p[0]))
    return [e for _, e in indexed]


def by_member(events: Iterable[MemberEvent]) -> dict[str, list[MemberEvent]]:
    out: dict[str, list[MemberEvent]] = {}
    for e in events:
        out.setdefault(e.member_id, []).append(e)
    return out


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def contract_events(events: Iterable[MemberEvent]) -> Iterator[dict]:
    """Input events of the topic contract, in event-time order."""
    ordered = sorted(enumerate(events), key=lambda p: (p[1].ts, p[0]))
    for _, e in ordered:
        out = {"event_id": e.event_id, "member_id": e.member_id, "type": e.type,
               "item_id": e.item_id, "ts": rfc3339(e.ts), "quantity": e.quantity}
        if e.price is not None:
            out["price"] = e.price
        if e.session_id is not None:
            out["session_id"] = e.session_id
        yield out
