"""One batch of `shop.events` records -> state changes and output messages.

Pass 1 walks the records in partition order: parse (bad ones to the DLQ),
advance the partition's watermark (duplicates too), snapshot members whose
inactivity checkpoint came due, drop duplicates, and apply the event to the
member's state.
The checkpoints are scored with ONE call and pass 2 replays the recorded
steps in order and lets the policies decide. Decisions depend on event time
and on the state at each step only, so any batching of the same log decides
the same alerts and segment changes.

A checkpoint needs no request of its own when the member's last scoring also
scored their churn at every checkpoint silence (`MemberState.churn_at`, the
served model's CHECKPOINT_SILENCE) and no event came since: the sequence is
the same, only the silence differs, so that is the score the request would
get. Otherwise (not scored since the newest event, a restart, a model
without it) the checkpoint is scored in the batch's request as before.

Scoring after events is decoupled from the event rate: the members a batch
touched join a pending set (flagged in their persisted state, so a restart
re-scores them), and `score_pending` scores the newest state of as many of
them as one request holds. A member with ten events in the meantime is
scored once; a member whose state moved on while its request was in flight
is not published stale but stays pending.

Faust-free on purpose: the worker feeds it (stream/worker/), the tests can too.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import MutableMapping, Optional

from stream.contract import topics
from stream.domain import member_value
from stream.domain.inactivity import InactivitySchedule
from stream.domain.member_state import MemberState, apply_event, event_hash, model_inputs
from stream.domain.parsing import Rejected, parse_record
from stream.domain.policies import anomaly_policy, churn_policy, recommendation_policy, segment_policy
from stream.processing import member_cache
from stream.processing.checkpoints import Check, explain_checks, snapshot, to_explain
from stream.processing.pending import PendingScoring
from stream.processing.recommender import Recommender
from stream.processing.outputs import INPUT, NoTelemetry, _anomaly, _dead_letter, _json
from stream.processing.records import BatchResult, EventStep, Outgoing, Prepared, Record
from stream.processing.recovery import recover_partition
from stream.scoring.breaker import Breaker
from stream.scoring.scores import Row, Scores, check_answer
from stream.settings import Settings


class MemberProcessor:
    def __init__(self, settings: Settings, store: MutableMapping[bytes, bytes], scorer, telemetry=None):
        self.s = settings
        self.store = store
        self.scorer = scorer
        # Decoded states, least recently written or decoded first (`trim_cache`); the store holds all.
        self.cache: dict[str, MemberState] = {}
        self.publishing: Counter = Counter()  # members whose changed state is on its way to a commit
        self.schedule = InactivitySchedule(settings.inactivity_checkpoints_days,
                                           int(settings.allowed_lateness_s * 1000))
        self.recommender = Recommender(settings)
        self.value_model = member_value.load(settings.member_value_path)
        self.anomaly_rules = anomaly_policy.Rules.of(settings)
        self.order_spend = anomaly_policy.OrderSpend()
        self.totals: Counter = Counter()
        self.telemetry = telemetry or NoTelemetry()
        # Member ids -> keyed pseudonyms at ingest, when a key is set (SECURITY.md).
        self.privacy = settings.pseudonymizer()
        self.pending = PendingScoring()
        self.breaker = Breaker("triton scoring", settings.scoring_retry_base_s, settings.scoring_retry_max_s)
        # Seconds spent, as Prometheus summaries (sum, count): pending before a request,
        # the request itself, the answered members' lists and outputs after it, and a
        # batch's checkpoint request.
        self.timings: dict[str, list[float]] = {"scoring_wait": self.pending.wait, "scoring_request": [0.0, 0],
                                                "scoring_lists": [0.0, 0], "checkpoint_scoring": [0.0, 0]}

    @property
    def pending_ready(self):
        """Set while a member awaits scoring."""
        return self.pending.ready

    # --- state access ----------------------------------------------------------------
    def state(self, member_id: str) -> Optional[MemberState]:
        state = self.cache.get(member_id)
        if state is None:
            raw = self.store.get(member_id.encode())
            if raw is not None:
                state = self.cache[member_id] = MemberState.from_bytes(raw)
        return state

    def peek(self, member_id: str) -> Optional[MemberState]:
        """The member's state without caching it: the store may hold a standby copy of
        another worker's partition, which must not enter this worker's cache."""
        state = self.cache.get(member_id)
        if state is None:
            raw = self.store.get(member_id.encode())
            state = None if raw is None else MemberState.from_bytes(raw)
        return state

    def _state_for(self, member_id: str, partition: int) -> MemberState:
        state = self.state(member_id)
        if state is None:
            state = self.cache[member_id] = MemberState(member_id, partition)
        return state

    def _ensure_partition(self, partition: int) -> None:
        if not self.schedule.knows(partition):
            recovered = recover_partition(partition, self.store, self.schedule, self.cache, self.pending,
                                          None if self.privacy is None else self.privacy.key_id + ".")
            self.recommender.recovered(recovered)
            self.order_spend.observe_states(recovered)

    def trim_cache(self, written: dict[str, MemberState]) -> None:
        """Right after a commit's cut: the cache within `member_cache_max`
        (stream/processing/member_cache.py)."""
        self.totals["members_evicted"] += member_cache.trim(self.cache, written, self.s.member_cache_max,
                                                             self.publishing)

    def forget_partitions(self, partitions) -> None:
        """On revocation: the cache and schedule of partitions no longer ours."""
        partitions = set(partitions)
        self.schedule.forget(partitions)
        for member in [m for m, s in self.cache.items() if s.partition in partitions]:
            del self.cache[member]
            self.pending.discard(member)

    # --- the batch -----------------------------------------------------------------
    async def process(self, records: list[Record]) -> BatchResult:
        """Both passes of one batch, its checkpoints scored in between."""
        prepared = self.prepare(records)
        return self.decide(prepared, await self.score_checkpoints(prepared))

    def prepare(self, records: list[Record]) -> Prepared:
        """Pass 1: parse, dedup, apply, snapshot due checkpoints. Nothing in it reads
        what pass 2 writes (the policy state), so the agent may prepare the next
        batch while this one's checkpoints are being scored; `decide` must then be
        called for the batches in the order they were prepared."""
        out = BatchResult()
        steps: list = []
        rows: list[Row] = []
        touched: dict[str, MemberState] = {}
        explain = 0
        L = self.s.sequence_length
        self.telemetry.batch(len(records))
        for rec in records:
            event = parse_record(rec.value, rec.key, self.s.max_event_bytes, self.s.max_field_chars)
            if isinstance(event, Rejected):
                _dead_letter(out, rec, event, privacy=self.privacy)
                continue
            if self.privacy is not None:
                event.member_id = self.privacy(event.member_id)
            try:
                self._ensure_partition(rec.partition)
                state = self._state_for(event.member_id, rec.partition)
                # Duplicates too: a restart re-applies under the watermarks a clean run had,
                # however far a crash left the stored states ahead of the input offset.
                late = self.schedule.is_late(rec.partition, event.ts)
                self.schedule.advance(rec.partition, event.ts)
                explain += self._checkpoints_due(rec.partition, steps, rows, touched, out)
                digest = event_hash(event.event_id)
                if digest in state.hashes or (rec.partition == state.partition and rec.offset <= state.last_offset
                                              and event.ts <= state.last_ts):
                    # The event id's hash catches a resent event among the member's last 50;
                    # the offset, on the partition it was applied from, a redelivery of any
                    # length (states committed ahead of the input cursor by a crash). A
                    # recreated topic, whose offsets start again, brings newer event times.
                    out.counts["duplicates"] += 1
                    out.counts[(INPUT, event.type, "duplicate")] += 1
                    continue
                out.counts["late_events"] += late
                # Older than the member's newest: no activity after it (silence, episode go on).
                backdated = bool(state.times) and event.ts < state.last_ts
                visits_before = state.purchase_visits
                visit = apply_event(state, event, L, digest)
                state.last_offset = rec.offset
                self.recommender.items.observe_newest(state, event.ts, event.category)
                started = state.purchase_visits > visits_before
                if not backdated:
                    state.check_index = 0
                    self.schedule.schedule(state, late)
                touched[event.member_id] = state
                self.pending.mark(state)
                steps.append(EventStep(state, event.ts if backdated else state.last_ts, started,
                                       state.purchase_visits, state.monetary, event.event_id, state.n_events,
                                       backdated, member_value.inputs_of(state)))
                rules = self.anomaly_rules
                if visit is not None:
                    if started and len(state.visits) >= 2:
                        self.order_spend.observe(state.visits[-2].spend)
                    high = self.order_spend.quantile(rules.high_value_quantile, rules.high_value_min_orders) \
                        if visit.ts - state.first_ts <= rules.new_member_ms else None
                    _anomaly(out, anomaly_policy.on_purchase(state, visit, started, event.event_id, rules, high))
                if not backdated:
                    _anomaly(out, anomaly_policy.on_event(state, event.item_id, event.event_id, rules))
                out.counts["events"] += 1
                out.counts[(INPUT, event.type, "applied")] += 1
            except Exception as exc:  # noqa: BLE001 (a bug, or a stored state it cannot read)
                # Kept with the error, not lost; the rest of the batch goes on. What the
                # record changed before it failed stays (docs/DESIGN.md section 8).
                _dead_letter(out, rec, Rejected("PROCESSING_FAILED", f"{type(exc).__name__}: {exc}"), event.type,
                             privacy=self.privacy)
                out.counts["processing_failures"] += 1
        return Prepared(out, steps, rows, touched, explain)

    def _checkpoints_due(self, partition: int, steps: list, rows: list[Row], touched: dict, out: BatchResult) -> int:
        """The checkpoints the partition's watermark has passed, snapshot as steps (a row
        for those whose churn is not known yet); returns how many may alert unexplained."""
        explain = 0
        for entry in self.schedule.pop_due(partition):
            silent = self.state(entry[1])
            if silent is None or not self.schedule.is_current(silent, entry):
                continue
            idx = self.schedule.catch_up(silent, entry)
            due_ms, member = silent.last_ts + self.schedule.offsets_ms[idx], silent.member_id
            known = silent.known_churn_at()
            if known is not None:
                churn = known[idx]
                may_alert = silent.episode is None and churn >= self.s.churn_alert_threshold
                steps.append(Check(silent, snapshot(silent), -1, self.schedule.days[idx], due_ms, idx,
                                   silent.n_events, churn, inputs=self._row(
                                       silent, (due_ms - silent.last_ts) / 1000.0) if may_alert else None))
                out.counts["checkpoints_known"] += 1
                explain += may_alert
            else:
                rows.append(self._row(silent, (due_ms - silent.last_ts) / 1000.0))
                out.counts["checkpoint_rows"] += 1
                steps.append(Check(silent, snapshot(silent), len(rows) - 1,
                                   self.schedule.days[idx], due_ms, idx, silent.n_events,
                                   update=bool(self.pending.take((member,), time.monotonic()))))
            silent.check_index = idx + 1
            self.schedule.schedule(silent)
            touched[member] = silent
        return explain

    async def score_checkpoints(self, prepared: Prepared) -> Optional[Scores]:
        """The batch's checkpoint rows in one request (None: none, or scoring failed),
        then the factors of the alerts they may send (stream/processing/checkpoints.py)."""
        scores, out = None, prepared.out
        if prepared.rows:
            t = time.monotonic()
            scores = await self._score(prepared.rows, out)
            self._took("checkpoint_scoring", t)
            if scores is None:
                return None
        explain = to_explain(prepared.steps, prepared.rows, scores, self.s.churn_alert_threshold)
        if explain and not await explain_checks(explain, lambda rows: self._score(rows, out)):
            out.counts["explanations_unavailable"] += len(explain)
        return scores

    def decide(self, prepared: Prepared, scores: Optional[Scores]) -> BatchResult:
        """Pass 2: the policies over the recorded steps, in order."""
        out = prepared.out
        self._decide(prepared.steps, scores, out)
        out.changed = prepared.touched
        self.totals.update(out.counts)
        return out

    async def score_pending(self, max_rows: int) -> BatchResult:
        """Score up to `max_rows` pending members (oldest first) in one request;
        their recommendation updates and latest churn probability."""
        out = BatchResult()
        now = time.monotonic()
        take = self.pending.take(self.pending.oldest(max_rows), now)
        if not take:
            return out
        scored_at = [state.n_events for state in take]
        scores = await self._score([self._row(state, 0.0) for state in take], out)
        answered = self._took("scoring_request", now)
        for row, state in enumerate(take):
            member = state.member_id
            if self.cache.get(member) is not state or state.n_events != scored_at[row]:
                continue  # revoked meanwhile, or moved on: its newer state is pending again
            if scores is not None:
                state.churn_probability = round(float(scores.churn[row]), 4)
                self._keep_churn_at(state, scores, row)
                self._publish(state, scores.items[row], scores.scores[row], False, out)
            else:
                # The list without the model meanwhile, and pending still: the model's once
                # Triton is back.
                self._publish(state, (), (), True, out)
                self.pending.mark(state)
            out.changed[member] = state
        self._took("scoring_lists", answered)
        self.totals.update(out.counts)
        return out

    def _took(self, timing: str, started: float) -> float:
        """Count one `timing` that began at monotonic time `started`; returns now."""
        now = time.monotonic()
        kept = self.timings[timing]
        kept[0] += now - started
        kept[1] += 1
        return now

    def _publish(self, state: MemberState, items, item_scores, fallback: bool, out: BatchResult) -> None:
        """The member's pending scoring answered: a recommendation update if the top-K changed."""
        state.pending_score = False
        if not fallback:
            anomaly_policy.predicted(state, items)
        ranked, fallback = self.recommender.recommend(state, () if fallback else items, item_scores)
        update = recommendation_policy.recommendation_update(
            state, [i for i, _, _ in ranked], [x for _, x, _ in ranked], self.s.recommendations_k,
            self.scorer.model_version, fallback, [r for _, _, r in ranked])
        if update is not None:
            out.outputs.append(Outgoing(topics.RECOMMENDATIONS, state.member_id.encode(), _json(update)))
            out.counts["recommendation_updates"] += 1

    def _keep_churn_at(self, state: MemberState, scores: Scores, row: int) -> None:
        """The member's churn at every checkpoint, from a row scored with their current
        sequence (the caller checked it is current)."""
        at = scores.churn_at
        if at is not None and at.shape[1] == len(self.schedule.days):
            state.churn_at = (state.n_events, at[row].tolist())

    def _row(self, state: MemberState, silence_s: float) -> Row:
        items, types, gaps = model_inputs(state, self.s.sequence_length)
        return Row(items, types, gaps, silence_s)

    async def _score(self, rows: list[Row], out: BatchResult) -> Optional[Scores]:
        """The rows' scores, or None: the circuit is open, or the request failed in any
        way (Triton down, a timeout, a malformed answer, a bug): none of them may end
        the task that asked."""
        if not rows or not self.breaker.allow():
            return None
        t = time.monotonic()
        try:
            scores = await self.scorer.score(rows)
            check_answer(scores, len(rows))
        except asyncio.CancelledError:
            self.breaker.abandoned()
            raise
        except Exception as exc:  # noqa: BLE001 (every failure is an unavailable scorer)
            self.telemetry.scoring_request(len(rows), time.monotonic() - t, type(exc).__name__)
            out.counts["scoring_failures"] += 1
            self.breaker.failed(f"{type(exc).__name__}: {exc}"[:300])
            return None
        self.telemetry.scoring_request(len(rows), time.monotonic() - t, None)
        self.breaker.succeeded()
        out.counts["scored_rows"] += len(rows)
        return scores

    def _decide(self, steps: list, scores: Optional[Scores], out: BatchResult) -> None:
        s = self.s
        version = self.scorer.model_version
        for step in steps:
            state = step.state
            if isinstance(step, Check):
                churn = step.churn
                if churn is None:
                    current = state.n_events == step.n_events and self.cache.get(state.member_id) is state
                    if scores is None:
                        # Not scored: put the checkpoint back, unless the member acted since,
                        # and the pending scoring it was to answer.
                        if state.check_index == step.index + 1:
                            state.check_index = step.index
                            self.schedule.schedule(state)
                        if step.update and current:
                            self.pending.mark(state)
                        continue
                    churn = float(scores.churn[step.row])
                    if current:
                        self._keep_churn_at(state, scores, step.row)
                        if step.update:
                            self._publish(state, scores.items[step.row], scores.scores[step.row], False, out)
                            out.counts["checkpoint_updates"] += 1
                # The tier as the steps before this one left it (pass 2 sets it, and pass 1
                # of a later batch may have taken the snapshot before that).
                step.snapshot.tier = state.tier
                alert = churn_policy.at_checkpoint(state, step.snapshot, churn, step.days, s.churn_alert_threshold,
                                                   version, self.value_model, step.factors)
                if alert is not None:
                    out.outputs.append(Outgoing(topics.CHURN_ALERTS, state.member_id.encode(), _json(alert)))
                    out.counts["alerts"] += 1
                if churn >= s.churned_probability:
                    state.churned = True
                visits, monetary, at_ms = step.snapshot.purchase_visits, step.snapshot.monetary, step.due_ms
                cause = step.snapshot.last_event_id, step.n_events, step.days
                inputs, last_ts = member_value.inputs_of(step.snapshot), step.snapshot.last_ts
            else:
                if not step.backdated:
                    segment_policy.on_member_event(state, step.started_visit)
                visits, monetary, at_ms = step.purchase_visits, step.monetary, step.ts
                cause = step.event_id, step.n_events, 0
                inputs, last_ts = step.value, step.ts
            change = segment_policy.segment_change(
                state, visits, monetary, at_ms, s.loyal_after_visits, s.tier_thresholds, cause,
                lambda: member_value.contract_value(self.value_model, inputs, last_ts, at_ms))
            if change is not None:
                out.outputs.append(Outgoing(topics.SEGMENTS, state.member_id.encode(), _json(change)))
                out.counts["segment_changes"] += 1

