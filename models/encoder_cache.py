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
from typing import Optional

import numpy as np
import torch

try:
    from . import serving
except ImportError:  # pragma: no cover - inside an export the modules sit side by side
    import serving

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the rolling hash loses no event
_EMPTY = 0  # the slot of rows with no cached prefix: all zeros, never given out
_CODES = 64  # events a slot's sequence may hold (the served signature's sequences: 50)
_CODE_BYTES = 36  # a slot's event code in its Python list: a pointer and an int
_SLOT_OVERHEAD = 250  # bytes a slot costs beside its codes: the entries' dict, its key and length
_SCRATCH_SLOTS = 8  # slots per row of _extend's scratch (the default budget's: 2,221 rows in fp32)


def event_codes(items: np.ndarray, types: np.ndarray, gap_buckets: np.ndarray) -> np.ndarray:
    """[B, L] int64, one per encoded event, 0 for padding (an event's type is never 0)."""
    return (items.astype(np.int64) << 8) | (types.astype(np.int64) << 5) | gap_buckets.astype(np.int64)


def prefix_hashes(codes: np.ndarray) -> np.ndarray:
    """[B, L] uint64: column c hashes the row's real events up to c (leading padding,
    0, leaves the hash at 0, so each row's hashes start at its first event).

    The rolling hash h_c = h_(c-1) * M + code_c (mod 2^64) is sum_(j<=c) code_j * M^(c-j),
    that is M^c * sum_(j<=c) code_j * M^-j: M is odd, so it has an inverse mod 2^64, and
    the hashes are one cumulative sum instead of a loop over the columns (a few numpy
    calls for any width instead of three per column: a tenth of the time at a few rows)."""
    powers, inverse = _powers(codes.shape[1])
    with np.errstate(over="ignore"):
        return np.cumsum(codes.astype(np.uint64) * inverse, axis=1, dtype=np.uint64) * powers


_POWERS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _powers(width: int) -> tuple[np.ndarray, np.ndarray]:
    """(M^c, M^-c mod 2^64) for c < width, uint64."""
    known = _POWERS.get(width)
    if known is None:
        m = int(_MULTIPLIER)
        known = _POWERS[width] = (np.array([pow(m, c, 1 << 64) for c in range(width)], np.uint64),
                                  np.array([pow(m, -c, 1 << 64) for c in range(width)], np.uint64))
    return known


class EncoderCache:
    """The newest hidden state and every block's keys and values, by sequence.

    `last_hidden(model, batch)` is `serving.encode_newest(model, batch)`, computing
    only the positions that no cached prefix holds. `max_bytes` bounds the table
    (allocated at the first call, on the model's device): a slot costs a whole
    window's keys and values (50 KB for the shipped model), and an eighth of those
    again for the scratch the gathers fill (kept between calls: a row per 8 slots;
    larger groups are encoded in parts of that many rows), so the cache holds
    `max_bytes / (slot_bytes + kv_bytes / 8)` sequences. Not `incremental`, or for a
    network without `extend_newest` (the exported programs), it keeps the newest
    hidden state alone and reuses it for the same sequence only (a slot then costs
    ~3 KB, its codes most of it). Counters: `hits` (rows answered from the cache
    alone), `extended` (rows that reused a prefix), `misses`, and `positions`
    (encoder positions computed) against `real` (the rows' events).
    """

    def __init__(self, max_bytes: int = 1 << 30, incremental: bool = True):
        self.max_bytes, self.incremental = int(max_bytes), incremental
        self.entries: OrderedDict[int, int] = OrderedDict()  # full-sequence hash -> slot, LRU first
        self.slots = self.scratch_rows = 0
        self.hits = self.extended = self.misses = self.positions = self.real = 0

    def _allocate(self, model, last: torch.Tensor, kv_dtype) -> None:
        width = model.blocks.wpe.num_embeddings if kv_dtype is not None else 0
        per_position = 0 if kv_dtype is None else 2 * sum(b.attn.embed_dim for b in model.blocks.h)
        kv_bytes = width * per_position * torch.empty((), dtype=kv_dtype or last.dtype).element_size()
        slot_bytes = kv_bytes + last.numel() * last.element_size() + _CODE_BYTES * _CODES + _SLOT_OVERHEAD
        # _extend's scratch is inside the budget: a row of it per _SCRATCH_SLOTS slots (a
        # slot's keys and values each); larger groups are encoded in parts of that many rows.
        self.slots = max(int(self.max_bytes // (slot_bytes + kv_bytes / _SCRATCH_SLOTS)), 2)
        self.scratch_rows = self.slots // _SCRATCH_SLOTS if kv_bytes else 0
        # Uninitialised (on a CPU, pages are committed as slots fill): a slot is zeroed when
        # first given out (_store), and rows without a prefix read slot _EMPTY, zeroed here.
        self.kv = None
        if kv_dtype is not None:
            # [blocks, keys/values, slot, head, position, head_dim]: a block's keys (or values)
            # of some slots' first positions gather into the layout attention reads.
            blocks, (heads, head_dim) = len(model.blocks.h), self._heads(model)
            self.kv = torch.empty((blocks, 2, self.slots, heads, width, head_dim), dtype=kv_dtype, device=last.device)
            self.kv[:, :, _EMPTY] = 0
            self.gathered = self.kv.new_empty((blocks, 2, 0, heads * width * head_dim))  # _extend's scratch
        self.last = torch.empty((self.slots, last.numel()), dtype=last.dtype, device=last.device)
        # Per slot, in Python lists (read row by row, where numpy's calls cost more than the
        # work): its sequence's event codes (None until stored: an empty list per slot made
        # 10^5 objects and the garbage collector's passes over them, 0.4-0.55 s at the first
        # call in "full" mode) and their count.
        self.codes: list[Optional[list[int]]] = [None] * self.slots
        self.lengths = [0] * self.slots
        self.free = list(range(self.slots - 1, _EMPTY, -1))
        self.unused: list[int] = []  # slots given out from `free` since the last _store

    def _find(self, codes: list, hashes: list, n: int, incremental: bool) -> tuple[int, int]:
        """(length, slot) of the longest cached prefix of a row's n real events (its codes
        and prefix hashes, as lists); (0, -1)."""
        start = len(hashes) - n
        # The usual answers first, by two lookups: the same sequence, or one event less.
        for j in ((n, n - 1) if incremental else (n,)):
            if j and hashes[start + j - 1] in self.entries and self._holds(codes, hashes, start, j):
                return j, self.entries[hashes[start + j - 1]]
        if not incremental:
            return 0, -1
        for j in sorted((hashes.index(h, start) - start + 1 for h in self.entries.keys() & hashes[start:]),
                        reverse=True):
            if j < n - 1 and self._holds(codes, hashes, start, j):
                return j, self.entries[hashes[start + j - 1]]
        return 0, -1

    def _holds(self, codes: list, hashes: list, start: int, j: int) -> bool:
        """Whether the entry under the row's prefix hash of length j holds those j events
        (a hash collision does not); if so it becomes the most recently used."""
        key = hashes[start + j - 1]
        slot = self.entries[key]
        if self.lengths[slot] == j and self.codes[slot] == codes[start:start + j]:
            self.entries.move_to_end(key)
            return True
        return False

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
        code_rows, hash_rows = codes.tolist(), hashes.tolist()
        for i, (row_codes, row_hashes, n) in enumerate(zip(code_rows, hash_rows, real.tolist())):
            key = row_hashes[-1]
            first = todo.get(key)
            if first is not None and code_rows[first] == row_codes:
                copies.append((i, first))
                continue
            if n and self.slots:
                kept[i], found[i] = self._find(row_codes, row_hashes, n, incremental)
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
            step = self.scratch_rows if incremental and self.scratch_rows else len(order)
            for rows_g in (order[group[i:i + step]] for group in groups for i in range(0, len(group), step)):
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
        self._store(codes, hashes, real, rows, np.full(len(rows), -1), np.zeros(len(rows), np.uint64), last, (None, None),
                    np.zeros(len(rows), np.int64), pinned)
        return last

    def _extend(self, model, batch, codes, hashes, real, kept, found, rows: np.ndarray, pinned: set) -> torch.Tensor:
        """Encode one group: each row recomputes its newest `new` positions (the group's most
        new events); its earlier ones are read from its slot, left-aligned (their order
        does not matter to attention, their mask and position ids do)."""
        n = real[rows]
        width = max(int(n.max()), 1)
        new = min(max(int((n - kept[rows]).max()), 1), width)
        before = width - new  # columns of reused positions
        device = batch.types.device
        index = torch.from_numpy(rows).to(device)
        items, types, gaps = (t[index, -new:] for t in (batch.items, batch.types, batch.gap_buckets))
        layers = past_real = None
        reuse = np.maximum(n - new, 0)  # <= the row's cached prefix: its first `reuse` positions
        if before:
            source = torch.from_numpy(np.where(reuse > 0, found[rows], _EMPTY)).to(device)
            # Whole slots gathered (contiguous copies), then cut to `before` positions: a view
            # that batched matrix products read as it is. Per block [G, heads, before, head_dim].
            blocks, _, slots, *slot_shape = self.kv.shape
            rows_of = self.kv.view(blocks, 2, slots, -1)  # a slot's positions as one row: a plain copy each
            # Into one scratch, kept (fresh pages cost more than the copy), of at most
            # scratch_rows rows (last_hidden's parts); a budget under 8 slots keeps none.
            if not self.scratch_rows:
                scratch = rows_of.new_empty((blocks, 2, len(rows), rows_of.shape[3]))
            elif self.gathered.shape[2] < len(rows):
                scratch = self.gathered = rows_of.new_empty(
                    (blocks, 2, min(2 * len(rows), self.scratch_rows), rows_of.shape[3]))
            else:
                scratch = self.gathered
            layers = [tuple(torch.index_select(rows_of[b, i], 0, source, out=scratch[b, i, :len(rows)])
                            .view(-1, *slot_shape)[:, :, :before] for i in (0, 1)) for b in range(blocks)]
            past_real = torch.from_numpy(np.arange(before)[None, :] < reuse[:, None]).to(device)
        last, kv = model.extend_newest(items, types, gaps, layers, past_real)
        self.positions += len(rows) * new
        if not self.slots:
            self._allocate(model, last[0], kv[0][0].dtype)
        fresh = torch.stack([torch.stack(pair) for pair in kv]).to(self.kv.dtype)  # [blocks, 2, G, heads, new, hd]
        prefix_keys = hashes[rows, np.maximum(codes.shape[1] - n + kept[rows] - 1, 0)]  # read where kept > 0
        self._store(codes, hashes, real, rows, np.where(kept[rows] > 0, found[rows], -1), prefix_keys, last,
                    (layers, fresh), reuse, pinned)
        return last

    @staticmethod
    def _heads(model) -> tuple[int, int]:
        attn = model.blocks.h[0].attn
        return attn.num_heads, attn.head_dim

    def _slot_for(self, extended: int, prefix_key: int, pinned: set) -> int:
        """A slot for a new entry: the one of the prefix it extends (if no other row took
        it first), else a free one, else the least recently used one not read now; -1."""
        if extended >= 0 and self.entries.get(prefix_key) == extended:
            del self.entries[prefix_key]
            return extended
        if self.free:
            slot = self.free.pop()
            self.unused.append(slot)  # zeroed by _store before it writes there
            return slot
        for old, slot in self.entries.items():
            if slot not in pinned:
                del self.entries[old]
                return slot
        return -1

    def _store(self, codes, hashes, real, rows, extended, prefix_keys, last, encoded, reuse, pinned) -> None:
        """Keep each row's sequence (of `rows`, those with events) in a slot. `extended`: the
        slot of the prefix each row extends (-1: none), under its entry's key `prefix_keys`
        (the first row to take it deletes that entry: a prefix's slot goes to one row). `encoded`:
        (past: per block a pair [G, heads, P, hd], left-aligned, or None; fresh: [blocks, 2,
        G, heads, M, hd], right-aligned, or None), the group's reused and computed
        positions; a row that keeps its prefix's slot writes its fresh positions alone,
        one in a new slot its reused ones too."""
        slot_of, own_of = [-1] * len(rows), [False] * len(rows)
        width = codes.shape[1]
        for r, (i, n, key, prefix, prefix_key) in enumerate(zip(rows.tolist(), real[rows].tolist(),
                                                                hashes[rows, -1].tolist(), extended.tolist(),
                                                                prefix_keys.tolist())):
            if n == 0 or n > _CODES or key in self.entries:
                continue
            slot = self._slot_for(prefix, prefix_key, pinned)
            if slot < 0:
                continue
            pinned.add(slot)
            slot_of[r], own_of[r] = slot, slot == prefix
            self.entries[key] = slot
            self.lengths[slot] = n
            self.codes[slot] = codes[i, width - n:].tolist()
        slots, own = np.array(slot_of), np.array(own_of)
        keep = slots >= 0
        if self.unused and self.kv is not None:
            # Never written: what the allocation left there (NaN, say) would reach a row that
            # reads past its prefix's length, under the mask but weighted 0 (0 x NaN is NaN).
            self.kv.index_fill_(2, torch.tensor(self.unused, device=self.kv.device), 0)
        self.unused.clear()
        if not keep.any():
            return
        device = last.device
        self.last[torch.from_numpy(slots[keep]).to(device)] = last[torch.from_numpy(np.flatnonzero(keep)).to(device)]
        past, fresh = encoded
        if fresh is None:
            return
        table = self.kv.permute(2, 4, 0, 1, 3, 5)  # a view: [slot, position, blocks, 2, heads, hd]
        n = real[rows]
        # (part, the position of its column 0 per row, the rows that write it, up to which position)
        parts = [(fresh, n - fresh.shape[4], keep, n)]
        moved = keep & ~own & (reuse > 0)
        if past is not None and moved.any():
            parts.append((torch.stack([torch.stack(pair) for pair in past]), np.zeros_like(n), moved, reuse))
        for part, first, wanted, end in parts:
            positions = np.arange(part.shape[4])[None, :] + first[:, None]
            write = wanted[:, None] & (positions >= 0) & (positions < end[:, None])
            target = np.broadcast_to(slots[:, None], positions.shape)[write]
            table.index_put_((torch.from_numpy(target).to(device), torch.from_numpy(positions[write]).to(device)),
                             part.permute(2, 4, 0, 1, 3, 5)[torch.from_numpy(write).to(device)])
