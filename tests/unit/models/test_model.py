"""Training, export and the served code path, on a small real sample."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.config import ModelConfig, TrainConfig
from models.datasets import by_member, online_retail
from models.encoding import GAP_EDGES, ItemVocabulary, bucketize, encode
from models.export import export, load_checkpoint, save_checkpoint
from models.recipes import RETAIL_END, RETAIL_START
from models.serving import ExportedNetwork, predict
from models.datasets import MemberEvent, read_yoochoose
from models.evaluation import next_item
from models.evaluation.runs import SESSION_CONFIG
from models.network import MemberTransformer
from models.samples import cut_samples, session_samples
from models.train import train, train_sessions
from tests.fixtures.paths import EXPORT, SHARED_DATA, TEST_DATA

DATA = SHARED_DATA
EXCERPT = TEST_DATA


def test_vocabulary_encodes_pad_unknown_and_known_and_checks_its_hash(tmp_path):
    vocab = ItemVocabulary(["A", "B"])
    assert vocab.encode(np.array([[b"", b"A", b"Z", b"B"]], dtype=object)).tolist() == [[0, 2, 1, 3]]
    vocab.save(tmp_path / "v.json")
    assert ItemVocabulary.load(tmp_path / "v.json").sha256 == vocab.sha256
    data = json.loads((tmp_path / "v.json").read_text())
    data["items"] = ["A", "C"]
    (tmp_path / "v.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match"):
        ItemVocabulary.load(tmp_path / "v.json")


def test_gap_buckets():
    assert bucketize(np.array([0.0, 30.0, 60.0, 7 * 86400.0, 1e9]), GAP_EDGES).tolist() == [0, 1, 2, 10, 14]


def test_survival_churn_head_is_a_proper_probability_of_quiet():
    params = torch.tensor([[0.3, -2.0], [-1.0, 0.5]])
    window = torch.tensor([0.0, 0.0])
    quiet, active = MemberTransformer.log_quiet(params, window)
    assert torch.allclose(quiet.exp(), torch.ones(2), atol=1e-5)  # nothing happens in no time
    for w in (1.0, 30.0, 1e4):
        q, a = MemberTransformer.log_quiet(params, torch.full((2,), w))
        assert torch.allclose(q.exp() + a.exp(), torch.ones(2), atol=1e-5)
    gone = torch.sigmoid(params[:, 0])
    q_long = MemberTransformer.log_quiet(params, torch.full((2,), 1e6))[0].exp()
    assert torch.allclose(q_long, gone, atol=1e-5)  # in the long run only the gone stay quiet
    q30 = MemberTransformer.log_quiet(params, torch.full((2,), 30.0))[0].exp()
    expected = gone + (1 - gone) * torch.exp(-torch.exp(params[:, 1]) * 30)
    assert torch.allclose(q30, expected, atol=1e-6)


def test_churn_samples_never_look_past_the_label_end():
    day = 86400.0
    events = [MemberEvent(f"e{i}", "m", t * day, "A", "purchase") for i, t in enumerate([0, 10, 50, 95])]
    s = cut_samples({"m": events}, 0.0, 100 * day, step_days=20, horizon_days=60, max_len=5, seed=1,
                    event_cuts_per_member=0, min_window_days=7)
    # calendar cuts at days 20, 40, 60, 80; windows min(60, 100 - c)
    assert s.windows.tolist() == [60.0, 60.0, 40.0, 20.0]
    assert s.churned.tolist() == [0.0, 0.0, 0.0, 0.0]  # 50, 50, 95, 95 fall inside
    assert s.silence.reshape(-1).tolist() == [10 * day, 30 * day, 10 * day, 30 * day]
    assert s.item_ids[2].tolist()[-3:] == [b"A", b"A", b"A"] and s.types[2].tolist()[:2] == [0, 0]


def test_session_samples_cover_every_click_once():
    events = [MemberEvent(f"e{i}", "s", float(i), f"I{i}", "click") for i in range(7)]
    s = session_samples({"s": events}, max_len=4)
    targets = [t for row in s.next_items.tolist() for t in row if t]
    # windows end at 7 and 4 (and 1, too short): targets 1..6 once each, plus the overlap of one
    assert sorted(set(targets)) == [f"I{i}".encode() for i in range(1, 7)]
    assert np.isnan(s.churned).all()


def test_transformer_beats_popularity_on_a_real_yoochoose_excerpt(tmp_path):
    """The excerpt: YooChoose-100k sessions with id % 8 == 0 (tests/data/build_yoochoose_excerpt.py)."""
    train_s = read_yoochoose(EXCERPT / "yoochoose-excerpt-train.txt")
    test_s = read_yoochoose(EXCERPT / "yoochoose-excerpt-test.txt")
    config = replace(SESSION_CONFIG, epochs=12)
    result = next_item.evaluate(train_s, test_s, config, tmp_path / "p.csv", None, lambda s: None)
    by = {row["model"]: row for row in result["full"]}
    n_points = sum(len(ev) - 1 for ev in test_s.values())
    assert by["transformer"]["points"] == by["popularity"]["points"] == n_points == 1818 - len(test_s)
    assert by["transformer"]["hr@20"] > by["popularity"]["hr@20"] + 0.2
    assert by["transformer"]["mrr@20"] > by["popularity"]["mrr@20"] + 0.1
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "SessionId;Position;Recommendations;Scores" and len(lines) == n_points + 1
    first = lines[1].split(";")
    assert first[1] == "0" and len(first[2].split(",")) == 50 and len(first[3].split(",")) == 50


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not beside the checkout")
def test_train_export_and_serve_a_small_model(tmp_path):
    histories = by_member(online_retail(DATA))
    small = {k: histories[k] for k in sorted(histories)[:300]}
    config = replace(TrainConfig(epochs=1, batch_size=128),
                     model=ModelConfig(d_model=16, n_layers=1, n_heads=1))
    trained = train(small, RETAIL_START.timestamp(), RETAIL_END.timestamp(), config)
    assert trained.metrics["train_samples"] > 500 and 0 <= trained.metrics["churn_auc"] <= 1
    save_checkpoint(trained, tmp_path / "ck.pt", "test")
    out = export(tmp_path / "ck.pt", tmp_path / "repo", "m", 3)
    assert sorted(p.name for p in out.iterdir()) == [
        "encoder.pt2", "encoder_cache.py", "encoding.py", "heads.pt2", "hparams.json", "model.py", "network.py", "serving.py",
        "vocab.json", "weights.pt"]
    config_text = (tmp_path / "repo" / "m" / "config.pbtxt").read_text()
    assert f'string_value: "{trained.vocab.sha256}"' in config_text and "dynamic_batching" in config_text
    gpu_text = (tmp_path / "repo" / "m" / "configs" / "gpu.pbtxt").read_text()
    assert f'string_value: "{trained.vocab.sha256}"' in gpu_text and "KIND_GPU" in gpu_text
    reloaded, _ = load_checkpoint(tmp_path / "ck.pt")
    rows = dict(item_ids=np.array([[b""] * 48 + [b"85123A", b"71053"]], dtype=object),
                types=np.array([[0] * 48 + [5, 5]], dtype=np.int8), gaps=np.zeros((1, 50), np.float32),
                silence=np.array([[86400.0]], np.float32))
    a = predict(trained.model, trained.vocab, **rows, k=5)
    b = predict(reloaded.model, reloaded.vocab, **rows, k=5)
    assert a[1].tolist() == b[1].tolist() and np.allclose(a[0], b[0]) and a[2].shape == (1, 5)
    exported = predict(ExportedNetwork.load(out), trained.vocab, **rows, k=5)
    assert exported[1].tolist() == a[1].tolist() and np.allclose(exported[0], a[0], atol=1e-5)
    batch = encode(trained.vocab, rows["item_ids"], rows["types"], rows["gaps"], rows["silence"])
    assert batch.items.shape == (1, 50) and int(batch.types[0, 0]) == 0


def test_shipped_export_runs_the_code_in_models():
    """triton_repo holds copies of the inference code: they must be today's code."""
    from models.export import HERE, SERVED_CODE, served_copy

    shipped = EXPORT
    for src, dst in SERVED_CODE.items():
        # Today's code under the header that names it (models.export.GENERATED_HEADER).
        assert served_copy(src).endswith((HERE / src).read_text())
        assert (shipped / dst).read_text() == served_copy(src), f"re-export: {dst} differs from models/{src}"


def test_training_is_seeded_and_reproducible():
    sessions = read_yoochoose(EXCERPT / "yoochoose-excerpt-train.txt")
    small = {k: sessions[k] for k in sorted(sessions)[:300]}
    config = replace(SESSION_CONFIG, epochs=1)
    a, b = train_sessions(small, config), train_sessions(small, config)
    assert a.vocab.sha256 == b.vocab.sha256
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
