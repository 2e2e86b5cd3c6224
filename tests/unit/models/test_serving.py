"""The served computation's fast paths keep its arithmetic (models/serving.py)."""
import json

import numpy as np
import pytest
import torch
from transformers.activations import NewGELUActivation

from models.encoding import encode
from models.network import gelu_tanh
from hypothesis import given, settings, strategies as st

from models.serving import encode_newest, length_groups, predict, prepare, trim_padding

from tests.fixtures.model import excerpt_batch, shipped
from tests.fixtures.paths import EXPORT


def test_trim_padding_cuts_only_columns_that_are_padding_everywhere():
    types = np.array([[0, 0, 0, 1, 2], [0, 0, 3, 1, 1]], dtype=np.int8)
    items, t, gaps = trim_padding(types.astype(object), types, types.astype(np.float32))
    assert t.tolist() == [[0, 1, 2], [3, 1, 1]] and items.shape == gaps.shape == (2, 3)
    empty = np.zeros((2, 4), dtype=np.int8)
    assert trim_padding(empty, empty, empty)[1].shape == (2, 1)


def test_trimmed_batches_score_like_full_length_ones():
    model, vocab, k = shipped()
    batch = excerpt_batch()
    short = np.flatnonzero((batch[1] > 0).sum(axis=1) <= 12)
    sub = [a[short] for a in batch]
    churn, items, scores = predict(model, vocab, *sub, k=k)
    assert trim_padding(*sub[:3])[1].shape[1] <= 12  # the fast path was taken
    with torch.inference_mode():  # the untrimmed computation, by hand
        logits, ref_churn = model(encode(vocab, *sub))
        ref_scores, ref_idx = torch.softmax(logits, dim=1).topk(k, dim=1)
    np.testing.assert_allclose(churn, ref_churn.numpy(), atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-6)
    lookup = np.array([b"", b""] + [i.encode() for i in vocab.items], dtype=object)
    assert (items == lookup[ref_idx.numpy()]).mean() > 0.99  # ties in the tail may swap


def test_newest_hidden_is_the_encoders_newest_position():
    """Serving's encoder (final block at the newest position only, blocks from their
    weights) against transformers' GPT2Model over every position, on real sequences
    of every length, untrimmed (leading padding up to 49 columns)."""
    model, vocab, _ = shipped()
    batch = encode(vocab, *excerpt_batch(every=1))
    assert int((batch.types > 0).sum(dim=1).min()) == 1 and int((batch.types == 0).all(dim=0).sum()) == 0
    with torch.inference_mode():
        ours, reference = model.newest_hidden(batch), model.hidden(batch)[:, -1]
    assert ours.shape == reference.shape == (len(batch.types), model.out_norm.normalized_shape[0])
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=2e-5)


def _cost(lengths, groups, call_cost):
    return sum(len(g) * max(int(lengths[g].max()), 1) + call_cost for g in groups)


def _best_cost(lengths, call_cost):
    """The cheapest split of the rows sorted by length into runs, tried every way."""
    ordered = sorted(max(int(n), 1) for n in lengths)
    best = {0: 0}
    for j in range(1, len(ordered) + 1):
        best[j] = min(best[i] + (j - i) * ordered[j - 1] + call_cost for i in range(j))
    return best[len(ordered)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.integers(0, 400))
def test_length_groups_partition_the_rows_at_the_least_cost(lengths, call_cost):
    lengths = np.array(lengths)
    groups = length_groups(lengths, call_cost)
    assert sorted(int(i) for g in groups for i in g) == list(range(len(lengths)))  # each row once
    assert all(len(g) for g in groups)
    # Groups hold runs of lengths: none overlaps another's range.
    spans = [(int(lengths[g].min()), int(lengths[g].max())) for g in groups]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert _cost(lengths, groups, call_cost) == _best_cost(lengths, call_cost)


def test_length_groups_split_a_mixed_batch_and_keep_a_uniform_one_whole():
    mixed = np.array([50] * 10 + [2] * 200 + [9] * 40)
    groups = length_groups(mixed, 100)
    assert [sorted(set(mixed[g].tolist())) for g in groups] == [[2], [9], [50]]
    assert len(length_groups(np.array([7] * 256), 100)) == 1
    assert len(length_groups(mixed, 10 ** 9)) == 1  # calls dearer than any padding (a GPU)


def test_rows_encoded_in_length_groups_equal_one_call_at_full_width():
    """Every excerpt row, mixed lengths (1 to 50 events): grouped as served, each row's
    newest hidden state as in one call over the whole batch, within 1e-5."""
    model, vocab, _ = shipped()
    batch = encode(vocab, *excerpt_batch(every=1))
    lengths = (batch.types > 0).sum(dim=1).numpy()
    assert len(length_groups(lengths, 100)) > 2  # the grouped path is taken
    with torch.inference_mode():
        grouped, whole = encode_newest(model, batch), model.newest_hidden(batch)
    np.testing.assert_allclose(grouped.numpy(), whole.numpy(), atol=1e-5)


def test_fused_gelu_is_gpt2s_tanh_gelu():
    x = torch.linspace(-8, 8, 10001)
    np.testing.assert_allclose(torch.nn.functional.gelu(x, approximate="tanh").numpy(),
                               NewGELUActivation()(x).numpy(), atol=1e-6)


def test_the_served_blocks_gelu_is_gpt2s_tanh_gelu_and_leaves_its_input():
    """models.network.gelu_tanh (the served path, x sigmoid(2z) on a CPU): GPT-2's
    tanh GELU within float32 rounding; its input untouched (it works in place on its
    own buffer); under autograd, torch's kernel with its gradient."""
    x = torch.linspace(-8, 8, 10001)
    kept = x.clone()
    np.testing.assert_allclose(gelu_tanh(x).numpy(), NewGELUActivation()(x).numpy(), atol=1e-6, rtol=0)
    assert torch.equal(x, kept)
    leaf = x.clone().requires_grad_()
    gelu_tanh(leaf).sum().backward()
    assert leaf.grad is not None and leaf.grad.shape == x.shape
    half = x.to(torch.bfloat16)  # half precision: torch's kernel, not six rounding steps
    assert torch.equal(gelu_tanh(half), torch.nn.functional.gelu(half, approximate="tanh"))


def test_an_exported_program_keeps_torchs_gelu_kernel():
    """What torch.export traces may be moved to a GPU (models/serving.ExportedNetwork):
    it holds aten.gelu, not the CPU form, also when traced without gradients."""
    class Gelu(torch.nn.Module):
        def forward(self, x):
            return gelu_tanh(x)

    with torch.no_grad():
        program = torch.export.export(Gelu(), (torch.randn(4, 8),))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert any("gelu" in op for op in ops) and not any("sigmoid" in op for op in ops), ops


def test_bf16_variant_matches_fp32_within_the_stated_tolerance():
    """The GPU variant's arithmetic, checked on the CPU: churn within 0.02 absolute,
    the top-1 item the same for 95 % of rows, 8 of the top 10 shared on average."""
    batch = excerpt_batch()
    fp32, vocab, k = shipped("fp32")
    bf16, _, _ = shipped("bf16")
    c32, i32, _ = predict(fp32, vocab, *batch, k=k)
    c16, i16, _ = predict(bf16, vocab, *batch, k=k)
    assert np.abs(c32 - c16).max() <= 0.02
    assert (i32[:, 0] == i16[:, 0]).mean() >= 0.95
    overlap = [len(set(a[:10]) & set(b[:10])) for a, b in zip(i32, i16)]
    assert np.mean(overlap) >= 8


def test_exported_network_is_the_eager_one_at_any_batch_and_length(tmp_path):
    """The GPU variant's network (torch.export, from 3 rows of 4) against eager PyTorch on
    every excerpt row, trimmed and full length, with and without the sequence cache; and
    free of the CPU: moved to the meta device, it runs there."""
    from torch.export.passes import move_to_device_pass

    from models.encoder_cache import EncoderCache
    from models.serving import EXPORTED, ExportedNetwork, export_network

    model, vocab, k = shipped()
    assert [p.name for p in export_network(model, tmp_path)] == list(EXPORTED)
    exported = ExportedNetwork.load(tmp_path)
    batch = excerpt_batch(every=1)
    for rows in (batch, [a[:37] for a in batch], [a[:5, -1:] if a.shape[1] == 50 else a[:5] for a in batch]):
        eager = predict(model, vocab, *rows, k=k)
        for got in (predict(exported, vocab, *rows, k=k),
                    predict(exported, vocab, *rows, k=k, cache=EncoderCache())):
            np.testing.assert_allclose(got[0], eager[0], atol=1e-5)
            np.testing.assert_allclose(got[2], eager[2], atol=1e-5)
            assert (got[1][:, 0] == eager[1][:, 0]).mean() > 0.99
    meta = move_to_device_pass(torch.export.load(str(tmp_path / EXPORTED[0])), "meta").module()
    enc = encode(vocab, *batch)
    out = meta(enc.items.to("meta"), enc.types.to("meta"), enc.gap_buckets.to("meta"))
    assert out.device.type == "meta" and tuple(out.shape) == (len(batch[0]), 64)


def test_shipped_exported_network_is_the_shipped_weights():
    """triton_repo's encoder.pt2/heads.pt2 (served by configs/gpu.pbtxt) hold weights.pt's
    network, and under bf16 autocast (which does reach their ATen ops: the figures
    change) they stay within the bf16 tolerance of the fp32 path."""
    from models.serving import ExportedNetwork

    model, vocab, k = shipped()
    batch = excerpt_batch()
    eager = predict(model, vocab, *batch, k=k)
    fp32 = predict(ExportedNetwork.load(EXPORT), vocab, *batch, k=k)
    np.testing.assert_allclose(fp32[0], eager[0], atol=1e-5)
    np.testing.assert_allclose(fp32[2], eager[2], atol=1e-5)
    bf16 = predict(ExportedNetwork.load(EXPORT, precision="bf16"), vocab, *batch, k=k)
    assert 0 < np.abs(bf16[0] - eager[0]).max() <= 0.02
    assert (bf16[1][:, 0] == eager[1][:, 0]).mean() >= 0.95


def test_unknown_precision_is_refused():
    model, _, _ = shipped()
    with pytest.raises(ValueError, match="precision"):
        prepare(model, "cpu", "int3")


def test_churn_at_checkpoint_silences_is_the_churn_each_silence_would_score():
    """predict's `at_silences`: the rows' churn at other silences, from the same encoded
    sequences, equal to scoring the rows at each silence (eager and exported, with and
    without the sequence cache), and the first three outputs unchanged."""
    from models.encoder_cache import EncoderCache
    from models.serving import ExportedNetwork

    model, vocab, k = shipped()
    items, types, gaps, silence = excerpt_batch()
    days = np.array([7, 14, 21, 30, 45, 60, 90], np.float32) * 86400.0
    at = np.tile(days, (len(items), 1))
    at[::3] = at[::3][:, ::-1]  # rows may ask for different silences
    for network in (model, ExportedNetwork.load(EXPORT)):
        for cache in (None, EncoderCache(), EncoderCache(incremental=False)):
            churn, top, scores, later = predict(network, vocab, items, types, gaps, silence, k=k,
                                                cache=cache, at_silences=at)
            plain = predict(network, vocab, items, types, gaps, silence, k=k)
            np.testing.assert_array_equal(churn, plain[0])
            assert (top == plain[1]).all()
            assert later.shape == at.shape and later.dtype == np.float32
            for c in range(at.shape[1]):
                each = predict(network, vocab, items, types, gaps, at[:, c:c + 1], k=k)[0]
                np.testing.assert_allclose(later[:, c], each, rtol=0, atol=1e-6)
            assert (np.ptp(later, axis=1) > 1e-3).mean() > 0.9  # the silence matters
    none = predict(model, vocab, items, types, gaps, silence, k=k, at_silences=at[:, :0])[3]
    assert none.shape == (len(items), 0)


def test_gpu_config_serves_the_same_signature_on_a_gpu_in_bf16():
    """configs/gpu.pbtxt (chosen with --model-config-name=gpu) differs from the CPU
    default only in placement, batching and precision."""
    import re

    model_dir = EXPORT.parent
    cpu, gpu = (model_dir / "config.pbtxt").read_text(), (model_dir / "configs" / "gpu.pbtxt").read_text()

    def signature(text):
        return re.search(r"input \[.*?\]\noutput \[.*?\]\n", text, re.S).group(0)

    assert signature(cpu) == signature(gpu)
    assert 'name: "memberstream"' in gpu and "KIND_GPU" in gpu and "KIND_CPU" in cpu
    assert re.search(r'key: "precision" value: \{ string_value: "bf16" \}', gpu)
    assert re.search(r'key: "precision" value: \{ string_value: "fp32" \}', cpu)
    sha = json.loads((EXPORT / "hparams.json").read_text())["vocab_sha256"]
    assert sha in cpu and sha in gpu
    assert "preferred_batch_size: [ 256, 1024 ]" in gpu


def test_bytes_wire_codec_matches_tritonclients():
    from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

    from models.serving import bytes_from_wire, bytes_to_wire
    rng = np.random.default_rng(7)
    # Padding runs, ids of every length class, lengths whose low byte is 0 (256, 512).
    pool = [b"", b"", b"", b"214536502", b"85123A", b"x", b"\x00", b"\x00\x00\x00\x00", b"a" * 256, b"b" * 512]
    rows = np.array([[pool[i] for i in rng.integers(0, len(pool), 50)] for _ in range(64)], dtype=object)
    rows[3] = b""  # a row of padding only
    wire = serialize_byte_tensor(rows).item()
    assert bytes_to_wire(rows) == wire
    ours = bytes_from_wire(np.frombuffer(wire, dtype=np.uint8))
    theirs = deserialize_bytes_tensor(wire)
    assert ours.dtype == object and ours.shape == (64 * 50,)
    assert ours.tolist() == theirs.tolist() == rows.reshape(-1).tolist()
    assert bytes_from_wire(b"").shape == (0,)
    with pytest.raises(ValueError, match="past the end"):
        bytes_from_wire(wire[:-3])
