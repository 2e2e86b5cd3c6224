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


YOOCHOOSE = "yoochoose-100k/yoochoose-clicks-100k_{part}.txt"
YOOCHOOSE_REFERENCES = "yoochoose-100k/reference-recommendations"
DIGINETICA = "diginetica-sample/sample_train-item-views.csv"
CDNOW = "cdnow/CDNOW_master.txt"


def _sessions(rows: Iterable[tuple[str, str, float]], event_type: str,
              prefix: str) -> dict[str, list[MemberEvent]]:
    """(session, item, ts) rows -> sessions of events sorted by time, file order on ties."""
    out: dict[str, list[MemberEvent]] = {}
    for n, (session, item, ts) in enumerate(rows):
        out.setdefault(session, []).append(MemberEvent(
            event_id=f"{prefix}-{n}", member_id=session, ts=ts, item_id=item,
            type=event_type, session_id=session))
    for events in out.values():
        events.sort(key=lambda e: e.ts)  # stable: file order on equal times
    return out


def yoochoose(data_dir: Path, part: str) -> dict[str, list[MemberEvent]]:
    """A YooChoose-100k split (`train_full`, `train_tr`, `train_valid`, `test`) as click sessions."""
    return read_yoochoose(_open_data(data_dir, YOOCHOOSE.format(part=part)), part)


def read_yoochoose(path: Path, part: str = "file") -> dict[str, list[MemberEvent]]:
    with path.open() as fh:
        if next(fh).split() != ["SessionId", "ItemId", "Time"]:
            raise DataError(f"{path}: expected the header SessionId ItemId Time")
        rows = [(s, i, float(t)) for s, i, t in (line.split("\t") for line in fh)]
    return _sessions(rows, "click", f"yc-{part}")


def diginetica(data_dir: Path) -> dict[str, list[MemberEvent]]:
    """Diginetica item views as sessions; ts = event date + the session's time frame."""
    path = _open_data(data_dir, DIGINETICA)
    rows = []
    with path.open() as fh:
        reader = csv.DictReader(fh, delimiter=";")
        for row in reader:
            day = datetime.strptime(row["eventdate"], "%Y-%m-%d").replace(tzinfo=timezone.utc)
            rows.append((row["session_id"], row["item_id"],
                         day.timestamp() + int(row["timeframe"]) / 1000.0))
    return _sessions(rows, "view", "dg")


def cdnow(data_dir: Path) -> list[MemberEvent]:
    """CDNOW purchase lines (one per customer and day) as purchase events.

    The data has no items: every event's item is "cd", its quantity the
    number of CDs and its price the mean price per CD that day.
    """
    path = _open_data(data_dir, CDNOW)
    events = []
    with path.open() as fh:
        next(fh)
        for n, line in enumerate(fh):
            customer, day, cds, dollars = line.split()
            ts = datetime.strptime(day, "%Y%m%d").replace(tzinfo=timezone.utc).timestamp()
            qty = int(cds)
            events.append(MemberEvent(
                event_id=f"cdnow-{n}", member_id=customer, ts=ts, item_id="cd", type="purchase",
                quantity=max(1, qty), price=round(float(dollars) / max(1, qty), 4)))
    return sort_events(events)
