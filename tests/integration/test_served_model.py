"""What Triton serves equals eager PyTorch on the same export."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from models.encoding import ItemVocabulary
from models.network import MemberTransformer
from models.serving import predict
from stream.tools.launcher import LaunchError, start_triton, stopping
from stream.domain.member_state import MemberState, apply_event, model_inputs
from stream.domain.parsing import parse_event
from stream.scoring.scores import Row, ScoringUnavailable
from stream.scoring.triton import TritonScorer

from .conftest import ROOT, excerpt_lines

pytestmark = pytest.mark.integration
EXPORT = ROOT / "triton_repo" / "memberstream" / "1"
CHURN_TOL = 1e-5   # absolute, on probabilities
SCORE_TOL = 1e-6   # absolute, on next-item probabilities


def eager_model():
    hp = json.loads((EXPORT / "hparams.json").read_text())
    vocab = ItemVocabulary.load(EXPORT / "vocab.json")
    state = torch.load(EXPORT / "weights.pt", weights_only=True)
    assert bytes(state.pop("_vocab_sha256").tolist()).decode() == vocab.sha256
    model = MemberTransformer(len(vocab), hp["max_len"], hp["d_model"], hp["n_layers"], hp["n_heads"], 0.0,
                             hp["churn_horizon_days"])
    model.load_state_dict(state)
    return model.eval(), vocab, hp["top_k"]


def excerpt_rows() -> list[Row]:
    """Each member of the excerpt after every 7th event, at several silences."""
    states, rows = {}, []
    for i, line in enumerate(excerpt_lines()):
        event = parse_event(line, None, 1 << 20)
        if not hasattr(event, "member_id"):
            continue
        s = states.setdefault(event.member_id, MemberState(event.member_id, 0))
        if s.is_duplicate(event.event_id):
            continue
        apply_event(s, event, 50)
        if i % 7 == 0:
            items, types, gaps = model_inputs(s, 50)
            for silence in (0.0, 3 * 86400.0, 45 * 86400.0):
                rows.append(Row(items, types, gaps, silence))
    return rows


def test_triton_scores_equal_eager_pytorch(triton):
    assert_serves_eager(triton.grpc_url)


def test_triton_serving_the_gpu_configs_choices_on_the_cpu_scores_the_same(tmp_path):
    """The GPU config's network (the exported programs) with the sequence cache off (as
    bench/gpu.py serves it), on the CPU: every row through the exported encoder."""
    from bench.gpu import configured_copy

    repo = configured_copy(ROOT / "triton_repo", "memberstream", tmp_path / "repo", "config.pbtxt",
                           network="exported", encoder_cache="off")
    config = (repo / "memberstream" / "config.pbtxt").read_text()
    assert config.count('key: "network"') == 1 and 'string_value: "exported"' in config
    server = start_triton(repo, "memberstream", tmp_path / "work", timeout=120)
    with stopping(server.process):
        assert_serves_eager(server.grpc_url)


def test_triton_with_incremental_encoding_scores_the_same(tmp_path):
    """encoder_cache "incremental": the rows (each member after every 7th event, so most
    extend a row sent before) encoded from cached keys and values, within its tolerance."""
    from bench.gpu import configured_copy

    repo = configured_copy(ROOT / "triton_repo", "memberstream", tmp_path / "repo", "config.pbtxt",
                           encoder_cache="incremental")
    server = start_triton(repo, "memberstream", tmp_path / "work", timeout=120)
    with stopping(server.process):
        assert_serves_eager(server.grpc_url, score_tol=1e-5)


def test_triton_refuses_exported_programs_of_other_weights(tmp_path):
    from bench.gpu import configured_copy

    repo = configured_copy(ROOT / "triton_repo", "memberstream", tmp_path / "repo", "config.pbtxt",
                           network="exported")
    version = repo / "memberstream" / "1"
    state = torch.load(version / "weights.pt", weights_only=True)
    state["out_norm.bias"] = state["out_norm.bias"] + 1.0  # other weights, same vocabulary
    torch.save(state, version / "weights.pt")
    with pytest.raises(LaunchError, match="Triton exited"):
        start_triton(repo, "memberstream", tmp_path / "work", timeout=60)
    assert "disagree with weights.pt" in (tmp_path / "work" / "triton.log").read_text()


def assert_serves_eager(grpc_url: str, score_tol: float = SCORE_TOL) -> None:
    """Two clients at once, one asking for the churn at checkpoint silences as well
    (CHECKPOINT_SILENCE, optional) and one not, so that the dynamic batcher may merge
    requests with and without it: each gets the eager model's answers."""
    rows = excerpt_rows()
    assert len(rows) > 300
    days = (7, 30, 90)

    async def served(checkpoints_days):
        scorer = TritonScorer(grpc_url, "memberstream", 30.0, max_rows=64,  # several requests
                              checkpoints_days=checkpoints_days)
        await scorer.start()
        try:
            return await scorer.score(rows), scorer.requests, scorer.checkpoints_served
        finally:
            await scorer.close()

    async def both():
        return await asyncio.gather(served(()), served(days))

    (got, requests, _), (with_at, _, served_at) = asyncio.run(both())
    assert requests == (len(rows) + 63) // 64
    assert got.churn_at is None and served_at and with_at.churn_at.shape == (len(rows), len(days))
    model, vocab, k = eager_model()
    arrays = (np.array([r.items for r in rows], dtype=object), np.array([r.types for r in rows], dtype=np.int8),
              np.array([r.gaps for r in rows], dtype=np.float32))
    churn, items, scores = predict(model, vocab, *arrays, np.array([[r.silence_s] for r in rows], dtype=np.float32), k)
    for served_scores in (got, with_at):
        np.testing.assert_allclose(served_scores.churn, churn, rtol=0, atol=CHURN_TOL)
        np.testing.assert_allclose(served_scores.scores, scores, rtol=0, atol=score_tol)
    for c, d in enumerate(days):
        at = predict(model, vocab, *arrays, np.full((len(rows), 1), d * 86400.0, np.float32), k)[0]
        np.testing.assert_allclose(with_at.churn_at[:, c], at, rtol=0, atol=CHURN_TOL)
    for served_items, eager_items, eager_scores in zip(got.items, items, scores):
        gaps = np.diff(eager_scores)
        if np.all(np.abs(gaps) > SCORE_TOL):  # order is only defined between distinct scores
            assert served_items == [i.decode() for i in eager_items]
    assert len({c for c in got.churn.round(3)}) > 10  # the churn head is not constant


def test_triton_refuses_weights_trained_on_another_vocabulary(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "triton_repo" / "memberstream", repo / "memberstream")
    vocab_path = repo / "memberstream" / "1" / "vocab.json"
    data = orjson.loads(vocab_path.read_bytes())
    vocab = ItemVocabulary(data["items"][::-1], data["counts"][::-1])  # self-consistent, but not the trained one
    vocab.save(vocab_path)
    with pytest.raises(LaunchError, match="Triton exited"):
        start_triton(repo, "memberstream", tmp_path / "work", timeout=60)
    assert "disagree" in Path(tmp_path / "work" / "triton.log").read_text()


def test_a_scorer_started_before_its_model_learns_the_signature_once_it_is_served(triton):
    """The worker may start before Triton serves the model: the scorer describes it at
    its first request after that (version, and that it takes CHECKPOINT_SILENCE)."""
    from tritonclient.grpc import aio as grpc_aio
    from tritonclient.utils import InferenceServerException

    rows = excerpt_rows()[:5]

    async def go():
        admin = grpc_aio.InferenceServerClient(triton.grpc_url)
        scorer = TritonScorer(triton.grpc_url, "memberstream", 30.0, max_rows=64, checkpoints_days=(7, 14))
        # Without the admin header the repository API is refused (stream/tools/launcher/triton.py).
        with pytest.raises(InferenceServerException, match="(?i)restricted|unavailable|header|permission"):
            await admin.unload_model("memberstream")
        await admin.unload_model("memberstream", headers=triton.grpc_admin_headers)
        try:
            await scorer.start()  # nothing served yet: falls back until it is
            assert not scorer.described and scorer.model_version == "memberstream@unknown"
            with pytest.raises(ScoringUnavailable):
                await scorer.score(rows)
        finally:
            await admin.load_model("memberstream", headers=triton.grpc_admin_headers)
            await admin.close()
        try:
            scores = await scorer.score(rows)
        finally:
            await scorer.close()
        return scorer, scores

    scorer, scores = asyncio.run(go())
    assert scorer.described and scorer.checkpoints_served
    import urllib.error
    import urllib.request
    unload = urllib.request.Request(f"{triton.http_url}/v2/repository/models/memberstream/unload", data=b"{}",
                                    method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unload, timeout=10)
    assert refused.value.code == 403 and b"restricted" in refused.value.read()
    assert scorer.model_version.startswith("memberstream@1/vocab:")
    assert scores.churn_at.shape == (5, 2) and scores.churn.shape == (5,)
