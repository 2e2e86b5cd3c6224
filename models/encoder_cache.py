"""Incremental encoding: every block's keys and values by sequence, in a fixed budget.

A member is scored again after new events, and the model's blocks are causal:
the keys and values of every block at a position depend on that position and
the ones before it only (position ids count from the sequence's first event).
So the encoding of the events a member had at their last scoring still holds
when they have added k more, and only the k new positions need the encoder
(`MemberTransformer.extend_newest`); a sequence seen exactly before (a member
re-scored at an inactivity checkpoint) needs none.

Entries are found by their events, not by member: a row's longest cached
prefix is looked up by a rolling hash of its encoded events and then compared
event by event, so a collision costs a miss, never a wrong answer. Once a
member is past the sequence length each new event slides the window: its
first event changes, and nothing is reused. Entries live in slots of one
preallocated table (a slot holds a whole window); the least recently used
entry gives its slot up when none is free, and an entry that a row extended
gives its slot to the longer sequence. Rows of a batch are encoded in groups
of similar counts of new positions (models/serving.length_groups); a row of a
group recomputes as many of its newest positions as the group's widest row
needs, the earlier ones from its slot: the same values within float rounding
(tests/unit/models/test_encoder_cache.py).

Copied verbatim into every export.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

try:
    from . import serving
except ImportError:  # pragma: no cover - inside an export the modules sit side by side
    import serving

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the rolling hash loses no event
_EMPTY = 0  # the slot of rows with no cached prefix: all zeros, never given out
_CODES = 64  # events a slot's sequence may hold (the served signature's sequences: 50)
_SLOT_OVERHEAD = 120  # bytes a slot costs in the entries' dict


def event_codes(items: np.ndarray, types: np.ndarray, gap_buckets: np.ndarray) -> np.ndarray:
    """[B, L] int64, one per encoded event, 0 for padding (an event's type is never 0)."""
    return (items.astype(np.int64) << 8) | (types.astype(np.int64) << 5) | gap_buckets.astype(np.int64)


def prefix_hashes(codes: np.ndarray) -> np.ndarray:
    """[B, L] uint64: column c hashes the row's real events up to c (leading padding,
    0, leaves the hash at 0, so each row's hashes start at its first event)."""
    out = np.empty(codes.shape, np.uint64)
    h = np.zeros(codes.shape[0], np.uint64)
    values = codes.astype(np.uint64)
    with np.errstate(over="ignore"):
        for c in range(codes.shape[1]):
            h = h * _MULTIPLIER + values[:, c]
            out[:, c] = h
    return out


class EncoderCache:
    """The newest hidden state and every block's keys and values, by sequence.

    `last_hidden(model, batch)` is `serving.encode_newest(model, batch)`, computing
    only the positions that no cached prefix holds. `max_bytes` bounds the table
    (allocated at the first call, on the model's device): a slot costs a whole
    window's keys and values (50 KB for the shipped model), so the cache holds
    `max_bytes / slot_bytes` sequences. Not `incremental`, or for a network without
    `extend_newest` (the exported programs), it keeps the newest hidden state alone
    and reuses it for the same sequence only (a slot then costs ~1 KB). Counters: `hits` (rows answered from the cache
    alone), `extended` (rows that reused a prefix), `misses`, and `positions`
    (encoder positions computed) against `real` (the rows' events).
    """

    def __init__(self, max_bytes: int = 1 << 30, incremental: bool = True):
        self.max_bytes, self.incremental = int(max_bytes), incremental
        self.entries: OrderedDict[int, int] = OrderedDict()  # full-sequence hash -> slot, LRU first
        self.slots = 0
        self.hits = self.extended = self.misses = self.positions = self.real = 0

    def _allocate(self, model, last: torch.Tensor, kv_dtype) -> None:
        width = model.blocks.wpe.num_embeddings if kv_dtype is not None else 0
        per_position = 0 if kv_dtype is None else 2 * sum(b.attn.embed_dim for b in model.blocks.h)
        kv_bytes = width * per_position * torch.empty((), dtype=kv_dtype or last.dtype).element_size()
        slot_bytes = kv_bytes + last.numel() * last.element_size() + 8 * (_CODES + 2) + _SLOT_OVERHEAD
        self.slots = max(int(self.max_bytes // slot_bytes), 2)
        # Uninitialised (pages are committed as slots fill): only written columns are read,
        # and rows without a prefix read slot _EMPTY, zeroed here.
        self.kv = None
        if kv_dtype is not None:
            self.kv = torch.empty((self.slots, width, per_position), dtype=kv_dtype, device=last.device)
            self.kv[_EMPTY] = 0
        self.last = torch.empty((self.slots, last.numel()), dtype=last.dtype, device=last.device)
        self.codes = np.zeros((self.slots, _CODES), np.int64)
        self.lengths = np.zeros(self.slots, np.int64)
        self.keys = np.zeros(self.slots, np.uint64)
        self.free = list(range(self.slots - 1, _EMPTY, -1))

    def _find(self, codes: np.ndarray, hashes: list, n: int, incremental: bool) -> tuple[int, int]:
        """(length, slot) of the longest cached prefix of a row's n real events; (0, -1)."""
        start = len(hashes) - n
        entries = self.entries
        candidates = entries.keys() & hashes[start:] if incremental else (
            {hashes[-1]} if hashes[-1] in entries else ())
        for j in sorted((hashes.index(h, start) - start + 1 for h in candidates), reverse=True):
            slot = entries[hashes[start + j - 1]]
            if self.lengths[slot] == j and np.array_equal(self.codes[slot, :j], codes[start:start + j]):
                entries.move_to_end(hashes[start + j - 1])
                return j, slot
        return 0, -1

    def last_hidden(self, model, batch) -> torch.Tensor:
        incremental = self.incremental and hasattr(model, "extend_newest")
        codes = event_codes(*(t.cpu().numpy() for t in (batch.items, batch.types, batch.gap_buckets)))
        hashes = prefix_hashes(codes)
        real = (codes > 0).sum(axis=1)
        rows, width = codes.shape
        self.real += int(real.sum())
        kept, found = np.zeros(rows, np.int64), np.full(rows, -1, np.int64)
        todo: dict[int, int] = {}  # full-sequence hash -> the first row that computes it
        compute: list[int] = []  # rows to encode (a collision of hashes adds its row here too)
        copies: list[tuple[int, int]] = []  # (row, row of the same sequence that computes it)
        for i in range(rows):
            row_hashes, n = hashes[i].tolist(), int(real[i])
            key = row_hashes[-1]
            first = todo.get(key)
            if first is not None and real[first] == n and np.array_equal(codes[first], codes[i]):
                copies.append((i, first))
                continue
            if n and self.slots:
                kept[i], found[i] = self._find(codes[i], row_hashes, n, incremental)
            if kept[i] < n or n == 0:
                todo.setdefault(key, i)
                compute.append(i)
        cached = [i for i in range(rows) if found[i] >= 0 and kept[i] == real[i]]
        self.hits += len(cached)
        out = None
        if cached:
            out = self.last.new_empty((rows, self.last.shape[1]))
            out[torch.tensor(cached, device=out.device)] = self.last[torch.from_numpy(found[cached]).to(out.device)]
        if compute:
            pinned = set(found[found >= 0].tolist())  # slots this batch reads: not given out
            order = np.array(compute, np.int64)
            self.extended += int((kept[order] > 0).sum())
            self.misses += int((kept[order] == 0).sum())
            groups = serving.length_groups(np.maximum(real[order] - kept[order], 1),
                                           serving.CALL_COST_POSITIONS.get(batch.types.device.type, 1_000_000)) \
                if incremental else [np.arange(len(order))]
            for group in groups:
                rows_g = order[group]
                last = self._extend(model, batch, codes, hashes, real, kept, found, rows_g, pinned) \
                    if incremental else self._encode(model, batch, codes, hashes, real, rows_g, pinned)
                if out is None:
                    out = last.new_empty((rows, last.shape[1]))
                out[torch.from_numpy(rows_g).to(out.device)] = last
        for i, source in copies:
            out[i] = out[source]
        return out

    def _encode(self, model, batch, codes, hashes, real, rows: np.ndarray, pinned: set) -> torch.Tensor:
        """A network without `extend_newest`: encode the rows whole, keep their newest state."""
        index = torch.from_numpy(rows).to(batch.types.device)
        sub = type(batch)(*(t[index] for t in (batch.items, batch.types, batch.gap_buckets,
                                               batch.silence_buckets, batch.features)))
        last = serving.encode_newest(model, sub)
        self.positions += int(np.maximum(real[rows], 1).sum())
        if not self.slots:
            self._allocate(model, last[0], None)
        self._store(codes, hashes, real, rows, np.full(len(rows), -1), last, (None, None),
                    np.zeros(len(rows), np.int64), pinned)
        return last

    def _extend(self, model, batch, codes, hashes, real, kept, found, rows: np.ndarray, pinned: set) -> torch.Tensor:
        """Encode one group: each row recomputes its newest `new` positions (the group's most
        new events), the earlier ones gathered from its slot."""
        n = real[rows]
        width = max(int(n.max()), 1)
        new = min(max(int((n - kept[rows]).max()), 1), width)
        before = width - new  # columns of reused positions
        device = batch.types.device
        index = torch.from_numpy(rows).to(device)
        items, types, gaps = (t[index, -new:] for t in (batch.items, batch.types, batch.gap_buckets))
        layers = past_real = past = None
        reuse = np.maximum(n - new, 0)  # <= the row's cached prefix
        if before:
            columns = np.arange(before)[None, :] - (before - reuse)[:, None]
            source = np.where(reuse > 0, found[rows], _EMPTY)
            past = self.kv[torch.from_numpy(source[:, None]).to(device),
                           torch.from_numpy(np.maximum(columns, 0)).to(device)]  # [G, before, F]
            past_real = torch.from_numpy(columns >= 0).to(device)
            blocks = past.view(len(rows), before, -1, 2, *self._heads(model)).permute(2, 3, 0, 4, 1, 5)
            layers = [(blocks[b, 0], blocks[b, 1]) for b in range(blocks.shape[0])]
        last, kv = model.extend_newest(items, types, gaps, layers, past_real)
        self.positions += len(rows) * new
        if not self.slots:
            self._allocate(model, last[0], kv[0][0].dtype)
        fresh = torch.stack([torch.stack(pair) for pair in kv])  # [blocks, 2, G, heads, new, hd]
        fresh = fresh.permute(2, 4, 0, 1, 3, 5).reshape(len(rows), new, -1).to(self.kv.dtype)
        self._store(codes, hashes, real, rows, np.where(kept[rows] > 0, found[rows], -1), last, (past, fresh),
                    reuse, pinned)
        return last

    @staticmethod
    def _heads(model) -> tuple[int, int]:
        attn = model.blocks.h[0].attn
        return attn.num_heads, attn.head_dim

    def _slot_for(self, extended: int, key: int, pinned: set) -> int:
        """A slot for a new entry: the one of the prefix it extends (if no other row took
        it first), else a free one, else the least recently used one not read now; -1."""
        if extended >= 0 and self.entries.get(int(self.keys[extended])) == extended:
            del self.entries[int(self.keys[extended])]
            return extended
        if self.free:
            return self.free.pop()
        for old, slot in self.entries.items():
            if slot not in pinned:
                del self.entries[old]
                return slot
        return -1

    def _store(self, codes, hashes, real, rows, extended, last, encoded, reuse, pinned) -> None:
        """Keep each row's sequence (of `rows`, those with events) in a slot. `encoded`:
        (past [G, P, F] or None, fresh [G, M, F] or None), the group's reused and computed
        positions, right-aligned; a row that keeps its prefix's slot writes its fresh
        positions alone, one in a new slot its reused ones too."""
        slots, own = np.full(len(rows), -1), np.zeros(len(rows), bool)
        for r, i in enumerate(rows.tolist()):
            n, key = int(real[i]), int(hashes[i, -1])
            if n == 0 or n > self.codes.shape[1] or key in self.entries:
                continue
            slot = self._slot_for(int(extended[r]), key, pinned)
            if slot < 0:
                continue
            pinned.add(slot)
            slots[r], own[r] = slot, slot == extended[r]
            self.entries[key] = slot
            self.keys[slot], self.lengths[slot] = key, n
            self.codes[slot, :n] = codes[i, codes.shape[1] - n:]
        keep = slots >= 0
        if not keep.any():
            return
        device = last.device
        self.last[torch.from_numpy(slots[keep]).to(device)] = last[torch.from_numpy(np.flatnonzero(keep)).to(device)]
        past, fresh = encoded
        n = real[rows]
        for part, offset, wanted in ((fresh, n, keep), (past, reuse, keep & ~own & (reuse > 0))):
            if part is None or not wanted.any():
                continue
            # column c of row r (right-aligned, its last `offset` columns real) -> position
            # c - width + offset of its slot
            positions = np.arange(part.shape[1])[None, :] - part.shape[1] + offset[:, None]
            write = wanted[:, None] & (positions >= 0)
            target = np.broadcast_to(slots[:, None], positions.shape)[write]
            self.kv.index_put_((torch.from_numpy(target).to(device), torch.from_numpy(positions[write]).to(device)),
                               part[torch.from_numpy(write).to(device)])
