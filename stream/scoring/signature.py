"""The served model's signature: the names of its tensors, as
triton_repo/memberstream/config.pbtxt declares them (tests/unit/scoring holds
the two to each other). The streaming code meets the model only here: raw
item ids, event type codes and event-time gaps in; churn probability and the
top-K item ids with their scores out.
"""
from __future__ import annotations

# Inputs, one row per member.
ITEM_IDS = "ITEM_IDS"          # BYTES [L]: raw item ids, newest last, b"" = padding
EVENT_TYPES = "EVENT_TYPES"    # INT8 [L]: contract order, 1 = view ... 5 = purchase, 0 = padding
GAPS = "GAPS"                  # FP32 [L]: seconds since the previous event
SILENCE = "SILENCE"            # FP32 [1]: seconds since the newest event, at scoring time
# Optional: more silences (s) to score churn at; the served model may not declare it.
CHECKPOINT_SILENCE = "CHECKPOINT_SILENCE"

# Outputs.
CHURN_PROBABILITY = "CHURN_PROBABILITY"    # FP32 [1]
TOP_ITEMS = "TOP_ITEMS"                    # BYTES [K]
TOP_SCORES = "TOP_SCORES"                  # FP32 [K]
CHURN_AT_CHECKPOINTS = "CHURN_AT_CHECKPOINTS"  # FP32 [C]: churn at each CHECKPOINT_SILENCE

INPUTS = (ITEM_IDS, EVENT_TYPES, GAPS, SILENCE, CHECKPOINT_SILENCE)
OUTPUTS = (CHURN_PROBABILITY, TOP_ITEMS, TOP_SCORES)  # always asked for
