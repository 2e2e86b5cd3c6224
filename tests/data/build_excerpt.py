"""Rebuild online-retail-excerpt.jsonl: `.venv/bin/python tests/data/build_excerpt.py`.

Real records: every Online Retail customer whose id is divisible by 97 (20
members, Dec 2010 to May 2011, cancellations included: they are invalid under
the contract and must reach the DLQ). Then, at fixed places, hand-made bad
lines and one redelivered (duplicate) event, so the tests know exactly what
must be dead-lettered and what must be dropped.
"""
from pathlib import Path

import orjson

from models.datasets import contract_events, online_retail

HERE = Path(__file__).parent
BAD = [
    b"{not json",
    b"[1, 2, 3]",
    b'{"event_id": "bad-type", "member_id": "12347", "type": "teleport", "item_id": "X", "ts": "2011-01-01T00:00:00Z"}',
    b'{"event_id": "bad-missing", "member_id": "12347", "type": "view", "ts": "2011-01-01T00:00:00Z"}',
    b'{"event_id": "bad-ts", "member_id": "12347", "type": "view", "item_id": "X", "ts": "1970-01-01T00:00:00Z"}',
    b'{"event_id": "bad-price", "member_id": "12347", "type": "purchase", "item_id": "X", "ts": 1294000000000, "price": -1}',
]

if __name__ == "__main__":
    events = [e for e in online_retail(Path("../shared/data"), include_cancellations=True)
              if int(e.member_id) % 97 == 0]
    lines = [orjson.dumps(e) for e in contract_events(events)]
    duplicate = lines[100]
    for i, bad in enumerate(BAD):
        lines.insert(50 + 120 * i, bad)
    lines.insert(400, duplicate)
    (HERE / "online-retail-excerpt.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    print(len(lines), "lines")
