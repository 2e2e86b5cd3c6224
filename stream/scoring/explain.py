"""Why the model gave a member the churn score it did: occlusion.

Each factor is one thing taken out of the member's scored row: the silence
since their newest event, one of their newest events (as if it had not
happened: its gap joins the next event's, or the silence), all their
purchases or cart adds (recorded as views instead), or the rhythm of their
visits (every gap set to their median). The row without it is scored again;
the difference from the full row's churn is that thing's contribution. The
factors that raise the score most come first; those that lower it are left
out (the alert explains a risk).

Pure functions over scorer rows (stream/scoring/scores.py): the processor
builds the variants, scores them in one request, and reads the factors.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import median

from stream.contract.schemas import EVENT_TYPES, Factor
from stream.scoring.scores import Row

RECENT_EVENTS = 5  # the newest events occluded one by one
TOP_FACTORS = 3
MIN_CONTRIBUTION = 0.01  # smaller differences are noise, not a reason

_CODE = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}
_NAME = {code: t.replace("_", "-") for t, code in _CODE.items()}


@dataclass(frozen=True)
class Occlusion:
    code: str
    what: str  # the thing taken away, for the text
    row: Row


def _days(seconds: float) -> str:
    days = seconds / 86400.0
    return f"{days:.0f} days" if days >= 2 else f"{seconds / 3600.0:.0f} hours"


def _without(row: Row, at: int) -> Row:
    """The row as if the event at position `at` had not happened, left-padded again."""
    items, types, gaps = list(row.items), list(row.types), list(row.gaps)
    silence = row.silence_s
    if at + 1 < len(items):
        gaps[at + 1] += gaps[at]
    else:
        silence += gaps[at]
    del items[at], types[at], gaps[at]
    return Row([b""] + items, [0] + types, [0.0] + gaps, silence)


def _retyped(row: Row, code: int) -> Row:
    view = _CODE["view"]
    return replace(row, types=[view if t == code else t for t in row.types])


def occlusions(row: Row) -> list[Occlusion]:
    """The variants of `row` to score, one per candidate factor."""
    start = next((i for i, item in enumerate(row.items) if item), len(row.items))
    n = len(row.items) - start
    out: list[Occlusion] = []
    if row.silence_s > 0:
        out.append(Occlusion("MODEL_SILENCE", f"the {_days(row.silence_s)} of silence",
                             replace(row, silence_s=0.0)))
    if n >= 2:
        ago = row.silence_s
        for at in range(len(row.items) - 1, max(start, len(row.items) - RECENT_EVENTS) - 1, -1):
            what = (f"the {_NAME.get(row.types[at], 'event')} of item {row.items[at].decode(errors='replace')} "
                    f"{_days(ago)} before the checkpoint")
            out.append(Occlusion("MODEL_RECENT_EVENT", what, _without(row, at)))
            ago += row.gaps[at]
    for code, factor, noun in ((_CODE["purchase"], "MODEL_PURCHASES", "purchase"),
                               (_CODE["add_to_cart"], "MODEL_CART", "cart add")):
        count = row.types[start:].count(code)
        if 0 < count < n:
            out.append(Occlusion(factor, f"the {count} {noun} event(s) in the sequence", _retyped(row, code)))
    between = row.gaps[start + 1:]
    if len(between) >= 2:
        typical = median(between)
        if any(abs(g - typical) > 0.5 * typical + 3600 for g in between):
            out.append(Occlusion("MODEL_PACE", "the irregular time between visits",
                                 replace(row, gaps=row.gaps[:start + 1] + [typical] * len(between))))
    return out


def factors(churn: float, variants: list[Occlusion], scored: list[float]) -> list[Factor]:
    """The top factors: what raised the churn score most, by at least MIN_CONTRIBUTION."""
    ranked = sorted(((churn - float(p), v) for v, p in zip(variants, scored)), key=lambda x: -x[0])
    return [Factor(code=v.code, contribution=round(delta, 4),
                   text=f"{v.what}: +{delta:.2f} to the churn score")
            for delta, v in ranked[:TOP_FACTORS] if delta >= MIN_CONTRIBUTION]
