"""A member's recommendation list: the model's answer blended with their own history
and the item statistics the worker counts from the stream (docs/DESIGN.md section 8, "Recommendation lists").

The processor counts every applied event here and asks for a member's list once
their pending scoring is answered (or fails: the list is then made without the
model and flagged `fallback`).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from stream.domain.item_stats import ItemStats, ItemStatsConfig
from stream.domain.member_state import MemberState
from stream.domain.policies import recommendation_policy
from stream.settings import Settings


def blend_of(settings: Settings) -> recommendation_policy.Blend:
    """The recommendation settings as a Blend. The catalogue file is read once: an
    unreadable one is an error at start, not a silently empty list."""
    s = settings
    catalogue = None
    if s.recommend_catalogue_path is not None:
        try:
            text = s.recommend_catalogue_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"recommend_catalogue_path {s.recommend_catalogue_path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        catalogue = frozenset(line.strip() for line in text.splitlines() if line.strip())
    return recommendation_policy.Blend(
        model=s.recommend_model_weight, repeat=s.recommend_repeat_weight, related=s.recommend_related_weight,
        trending=s.recommend_trending_weight, repeat_half_life_days=s.recommend_repeat_half_life_days,
        related_items=s.recommend_related_items, repeat_share=s.recommend_repeat_share,
        cold_start_events=s.recommend_cold_start_events,
        exclude_bought_within_days=s.recommend_exclude_bought_within_days, catalogue=catalogue,
        include_categories=frozenset(s.recommend_include_categories),
        exclude_categories=frozenset(s.recommend_exclude_categories))


def item_stats_of(settings: Settings) -> ItemStats:
    s = settings
    return ItemStats(ItemStatsConfig(half_life_days=s.item_stats_half_life_days, window=s.item_stats_window,
                                     window_s=s.item_stats_window_s, kept=s.item_stats_kept,
                                     max_items=s.item_stats_max_items))


class Recommender:
    def __init__(self, settings: Settings):
        self.k = settings.recommendations_k
        self.items = item_stats_of(settings)
        self.blend = blend_of(settings)

    def recovered(self, states: Iterable[MemberState]) -> None:
        """A newly owned partition's members: their kept sequences counted (after a
        restart the statistics start from what the members table holds)."""
        self.items.rebuild((state.items, state.types, state.times) for state in states)

    def recommend(self, state: MemberState, items: Sequence[str],
                  scores: Sequence[float]) -> tuple[list[tuple[str, float, str]], bool]:
        """The member's list from the model's answer (empty: none), and whether it is a
        fallback: made without the model (no answer, or too few events for one)."""
        fallback = not len(items) or recommendation_policy.cold(state, self.blend)
        if fallback:
            items, scores = (), ()
        return recommendation_policy.blend_items(state, items, scores, self.items, self.blend, self.k), fallback
