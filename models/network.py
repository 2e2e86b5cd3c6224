"""The member transformer: GPT-2 blocks over (item, event type, time gap).

Heads: next-item scores through the tied item embedding, and churn
probability from the newest position plus recency/frequency features.

The churn head is a mixture-cure survival model: it gives the probability
`p_gone` that the member has left for good and the daily event rate `rate`
if they have not, so that P(no event within w days) = p_gone + (1 - p_gone)
* exp(-rate * w) for any window w. Training can therefore use every
observation window the data allows (short ones near its end included) and
serving reports the window the deployment calls churn (`churn_horizon_days`).
Copied verbatim into every export together with encoding.py.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GPT2Config, GPT2Model

try:  # inside an export the modules sit side by side, not in a package
    from .encoding import N_FEATURES, N_GAP_BUCKETS, N_SILENCE_BUCKETS, EVENT_TYPES, EncodedBatch
except ImportError:  # pragma: no cover - exercised by the Triton backend
    from encoding import N_FEATURES, N_GAP_BUCKETS, N_SILENCE_BUCKETS, EVENT_TYPES, EncodedBatch


CHURN_WIDTH = 8


class MemberTransformer(nn.Module):
    def __init__(self, n_items: int, max_len: int, d_model: int, n_layers: int,
                 n_heads: int, dropout: float, churn_horizon_days: float = 90.0):
        super().__init__()
        self.churn_horizon_days = float(churn_horizon_days)
        self.item_emb = nn.Embedding(n_items, d_model, padding_idx=0)
        self.type_emb = nn.Embedding(len(EVENT_TYPES) + 1, d_model, padding_idx=0)
        self.gap_emb = nn.Embedding(N_GAP_BUCKETS, d_model, padding_idx=0)
        self.blocks = GPT2Model(GPT2Config(
            vocab_size=1, n_positions=max_len, n_embd=d_model, n_layer=n_layers,
            n_head=n_heads, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=0.0,
            bos_token_id=None, eos_token_id=None,
            # GPT-2's tanh GELU as one fused kernel: the same function as its default
            # "gelu_new", which builds it from five tensor ops (the MLP's main cost on a CPU).
            activation_function="gelu_pytorch_tanh"))
        # The token embedding of GPT-2 is unused: we feed inputs_embeds.
        self.blocks.wte.weight.requires_grad_(False)
        # The churn head sees the sequence only through a narrow, dropped-out
        # projection: with a few thousand members a wide one memorises them.
        self.silence_emb = nn.Embedding(N_SILENCE_BUCKETS, CHURN_WIDTH)
        self.churn_proj = nn.Sequential(nn.Dropout(0.3), nn.Linear(d_model, CHURN_WIDTH))
        self.feature_norm = nn.BatchNorm1d(N_FEATURES)
        self.churn_head = nn.Sequential(
            nn.Linear(2 * CHURN_WIDTH + N_FEATURES, 32), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(32, 2))
        self.out_norm = nn.LayerNorm(d_model)
        for emb in (self.item_emb, self.type_emb, self.gap_emb, self.silence_emb):
            nn.init.normal_(emb.weight, std=0.02)
            if emb.padding_idx is not None:
                nn.init.zeros_(emb.weight[emb.padding_idx])

    def hidden(self, batch: EncodedBatch) -> torch.Tensor:
        """[B, L, d] causal hidden states; position ids count real events only."""
        mask = (batch.types > 0).long()
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        x = self.item_emb(batch.items) + self.type_emb(batch.types) + self.gap_emb(batch.gap_buckets)
        out = self.blocks(inputs_embeds=x, attention_mask=mask, position_ids=positions)
        return self.out_norm(out.last_hidden_state)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_emb.weight.T

    def recommendable_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Item logits with padding and unknown ruled out: they are never recommended."""
        logits = self.item_logits(hidden)
        logits[..., :2] = float("-inf")
        return logits

    def churn_params(self, last: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
        """[B, 2]: logit of p_gone, log of the daily rate while not gone."""
        # Stop-gradient: the churn loss must not reshape the sequence encoder,
        # which would then memorise members instead of learning behaviour.
        z = torch.cat([self.churn_proj(last.detach()), self.silence_emb(batch.silence_buckets),
                       self.feature_norm(batch.features)], dim=1)
        return self.churn_head(z)

    @staticmethod
    def log_quiet(params: torch.Tensor, window_days: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log P(no event within window), log P(some event within window))."""
        gone, log_rate = params[:, 0], params[:, 1].clamp(-12.0, 6.0)
        decay = torch.exp(log_rate) * window_days
        log_stay = F.logsigmoid(-gone)
        quiet = torch.logaddexp(F.logsigmoid(gone), log_stay - decay)
        active = log_stay + torch.log(-torch.expm1(-decay.clamp(min=1e-6)))
        return quiet, active

    def churn_probability(self, last: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
        window = torch.full((last.shape[0],), self.churn_horizon_days, dtype=last.dtype,
                            device=last.device)
        return torch.exp(self.log_quiet(self.churn_params(last, batch), window)[0])

    def forward(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(next-item logits [B, V] at the newest event, churn probability [B])."""
        return self.heads(self.hidden(batch)[:, -1], batch)

    def heads(self, last: torch.Tensor, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads from the newest position's hidden state [B, d]."""
        return self.recommendable_logits(last), self.churn_probability(last, batch)
