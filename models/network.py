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

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GPT2Config, GPT2Model

try:  # inside an export the modules sit side by side, not in a package
    from .encoding import N_FEATURES, N_GAP_BUCKETS, N_SILENCE_BUCKETS, EVENT_TYPES, EncodedBatch
except ImportError:  # pragma: no cover - exercised by the Triton backend
    from encoding import N_FEATURES, N_GAP_BUCKETS, N_SILENCE_BUCKETS, EVENT_TYPES, EncodedBatch


CHURN_WIDTH = 8


def _scale(attn) -> float:
    """GPT2Attention's score scale, from its config flags."""
    scale = attn.head_dim ** -0.5 if attn.scale_attn_weights else 1.0
    if attn.scale_attn_by_inverse_layer_idx:
        scale /= float(attn.layer_idx + 1)
    return scale


def _gpt2_block(block, h: torch.Tensor, mask: torch.Tensor, newest_only: bool, past=None):
    """One GPT-2 block (transformers' GPT2Block weights, eval mode) on [B, L, d]; with
    `newest_only`, the output at the newest position alone ([B, 1, d]). `past`: the keys
    and values ([B, heads, P, head_dim] each) of P earlier positions, attended to before
    h's own (`mask` then spans P + L keys). Returns (output, (keys, values) of h's positions)."""
    attn = block.attn
    q, k, v = attn.c_attn(block.ln_1(h)).split(attn.split_size, dim=2)
    if newest_only:
        q, h = q[:, -1:], h[:, -1:]
    b, heads = h.shape[0], attn.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, t.shape[1], heads, attn.head_dim).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    if past is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=_scale(attn))
    else:
        out = _attend_with_past(q, past, k, v, mask, _scale(attn))
    h = h + attn.c_proj(out.transpose(1, 2).reshape(b, -1, attn.embed_dim))
    mlp = block.mlp  # eval mode: its dropout is the identity
    return h + mlp.c_proj(gelu_tanh(mlp.c_fc(block.ln_2(h)))), (k, v)


_GELU_A = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_B = _GELU_A * 0.044715


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh GELU, 0.5 x (1 + tanh(z)) with z = sqrt(2/pi) (x + 0.044715 x^3),
    on a CPU in float32 as x sigmoid(2z): the same function (tanh(z) = 2 sigmoid(2z) -
    1), within float32 rounding, in 2.1-2.5x less time on [2,900, 256] (torch's CPU
    tanh kernel is the slow part: the activation was 17 % of a pass over the bench
    log's scoring mix), about 20 us more at one row. In place on its own buffer, so not
    where autograd is recording; elsewhere (training, a GPU, half precision, whatever
    torch.export traces: its program may be moved to a GPU) torch's fused kernel."""
    if (x.device.type != "cpu" or x.dtype != torch.float32 or (x.requires_grad and torch.is_grad_enabled())
            or torch.compiler.is_compiling()):
        return F.gelu(x, approximate="tanh")
    t = x * x
    t.mul_(_GELU_B).add_(_GELU_A).mul_(x)
    return t.sigmoid_().mul_(x)


def _attend_with_past(q, past, k, v, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of the queries `q` over earlier positions' keys and values (`past`, P
    of them) and their own (`k`, `v`), as over the two joined, without joining them: the
    join copies the whole past in every block, while a member who added one event has a
    query or two. The scores of both parts side by side, one softmax, and each part's
    values weighted by its share; `mask` [B, 1, M, P + M] as for the joined keys. A query
    that sees no key (a row of padding alone) gets zeros, as scaled_dot_product_attention
    gives it (not the NaN of a softmax over nothing)."""
    past_k, past_v = (t.to(q.dtype) for t in past)
    q = q * scale  # before the products: the scores' range stays a half-precision one
    scores = torch.cat([q @ past_k.transpose(-1, -2), q @ k.transpose(-1, -2)], dim=-1)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    n = past_k.shape[2]
    return weights[..., :n] @ past_v + weights[..., n:] @ v


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

    def newest_hidden(self, batch: EncodedBatch) -> torch.Tensor:
        """`hidden(batch)[:, -1]` ([B, d]) for serving, without the final block's work on
        the other positions: that block needs keys and values everywhere but queries, the
        MLP and the residuals at the newest position only (~40 % of a 2-block encoder's
        arithmetic). The blocks run from their own weights (GPT-2's pre-LN block, scaled
        dot-product attention); tests/unit/models/test_serving.py holds it to `hidden`."""
        return self.extend_newest(batch.items, batch.types, batch.gap_buckets)[0]

    def extend_newest(self, items: torch.Tensor, types: torch.Tensor, gap_buckets: torch.Tensor,
                      past: "list | None" = None, past_real: "torch.Tensor | None" = None):
        """The newest position's hidden state [B, d] of sequences whose later positions are
        `items`, `types`, `gap_buckets` ([B, M], left padding) and whose earlier ones, if
        any, are given by their keys and values: `past`, per block a pair [B, heads, P,
        head_dim], real where `past_real` ([B, P] bool, left padding) is. Returns it with
        per block the (keys, values) of the M given positions ([B, heads, M, head_dim]).

        Causal blocks: a position's keys and values depend on it and the ones before
        only, so a sequence encoded once need only have its new events encoded when it
        grows (models/encoder_cache.py); position ids count the real past keys first."""
        gpt = self.blocks
        real = types > 0
        positions = real.long().cumsum(dim=1) - 1
        if past_real is not None:
            positions = positions + past_real.sum(dim=1, keepdim=True)
        h = self.item_emb(items) + self.type_emb(types) + self.gap_emb(gap_buckets) + gpt.wpe(positions.clamp(min=0))
        # Causal over real keys; a padding query also sees itself, so that no row is
        # without keys (some attention kernels return NaN for one). It reaches no real
        # position: padding keys are masked everywhere. (Built from the input, not from
        # a size and a device, so that a traced copy stays free of both.)
        ones = torch.ones_like(real[0])
        if past is None:
            keys = real[:, None, None, :]  # [B, 1, 1, M]: padding is never attended to
            causal = (ones[:, None] & ones[None, :]).tril()
            diagonal = torch.diag_embed(ones)
        else:
            keys = torch.cat([past_real, real], dim=1)[:, None, None, :]
            earlier = ones[:, None] & torch.ones_like(past_real[0])[None, :]  # [M, P]: all earlier
            causal = torch.cat([earlier, (ones[:, None] & ones[None, :]).tril()], dim=1)
            diagonal = torch.cat([torch.zeros_like(earlier), torch.diag_embed(ones)], dim=1)
        full = (causal & keys) | diagonal
        last = len(gpt.h) - 1
        kv = []
        for i, block in enumerate(gpt.h):
            h, pair = _gpt2_block(block, h, keys if i == last else full, newest_only=i == last,
                                  past=None if past is None else past[i])
            kv.append(pair)
        return self.out_norm(gpt.ln_f(h[:, -1])), kv

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
        window = torch.full_like(last[:, 0], self.churn_horizon_days)
        return torch.exp(self.log_quiet(self.churn_params(last, batch), window)[0])

    def forward(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(next-item logits [B, V] at the newest event, churn probability [B])."""
        return self.heads(self.newest_hidden(batch), batch)

    def heads(self, last: torch.Tensor, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads from the newest position's hidden state [B, d]."""
        return self.recommendable_logits(last), self.churn_probability(last, batch)
