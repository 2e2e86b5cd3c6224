"""Training, export and the served code path, on a small real sample."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.config import ModelConfig, TrainConfig
from models.datasets import by_member, online_retail
from models.encoding import GAP_EDGES, ItemVocabulary, bucketize, encode
from models.export import export, load_checkpoint, save_checkpoint
from models.recipes import RETAIL_END, RETAIL_START
from models.serving import predict
from models.train import _auc, train

DATA = Path(__file__).parents[3] / "shared" / "data"


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


def test_auc_against_hand_computed_values():
    assert _auc(np.array([0, 0, 1, 1.0]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert _auc(np.array([0, 1.0]), np.array([0.5, 0.5])) == 0.5


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
        "encoding.py", "hparams.json", "model.py", "network.py", "serving.py", "vocab.json", "weights.pt"]
    config_text = (tmp_path / "repo" / "m" / "config.pbtxt").read_text()
    assert f'string_value: "{trained.vocab.sha256}"' in config_text and "dynamic_batching" in config_text
    reloaded, _ = load_checkpoint(tmp_path / "ck.pt")
    rows = dict(item_ids=np.array([[b""] * 48 + [b"85123A", b"71053"]], dtype=object),
                types=np.array([[0] * 48 + [5, 5]], dtype=np.int8), gaps=np.zeros((1, 50), np.float32),
                silence=np.array([[86400.0]], np.float32))
    a = predict(trained.model, trained.vocab, **rows, k=5)
    b = predict(reloaded.model, reloaded.vocab, **rows, k=5)
    assert a[1].tolist() == b[1].tolist() and np.allclose(a[0], b[0]) and a[2].shape == (1, 5)
    batch = encode(trained.vocab, rows["item_ids"], rows["types"], rows["gaps"], rows["silence"])
    assert batch.items.shape == (1, 50) and int(batch.types[0, 0]) == 0


def test_shipped_export_runs_the_code_in_models():
    """triton_repo holds copies of the inference code: they must be today's code."""
    from models.export import HERE, SERVED_CODE

    shipped = Path(__file__).parents[2] / "triton_repo" / "memberstream" / "1"
    for src, dst in SERVED_CODE.items():
        assert (shipped / dst).read_text() == (HERE / src).read_text(), f"re-export: {dst} differs from models/{src}"
