"""Triton Python backend for the member transformer (exported as model.py).

Self-contained: it loads the weights, vocabulary and inference code that
sit beside it in the model version folder, and refuses to start when the
weights were trained on another vocabulary than the one shipped with them.
"""
import json
import os
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from encoding import ItemVocabulary  # noqa: E402
from network import MemberTransformer  # noqa: E402
from encoder_cache import EncoderCache  # noqa: E402
from serving import ExportedNetwork, bytes_from_wire, bytes_to_wire, predict, prepare  # noqa: E402

# The stub turns BYTES tensors to and from numpy with these two functions of
# pb_utils; theirs format a struct code per element and took a fifth of this
# process's time (bench/PROFILE.md). Same results, several times sooner
# (tests/unit/models/test_serving.py checks them against tritonclient's).
_serialize_any = pb_utils.serialize_byte_tensor


def _serialize(tensor):
    if tensor.size and tensor.dtype == np.object_:
        try:
            return bytes_to_wire(tensor)
        except TypeError:  # str elements: the general path encodes them
            pass
    return _serialize_any(tensor)


pb_utils.deserialize_bytes_tensor = bytes_from_wire
pb_utils.serialize_byte_tensor = _serialize


def _same_network(eager, exported, vocab) -> None:
    """Refuse exported programs that are not these weights' network (a stale export)."""
    n, width = 4, 6
    items = np.array([[i.encode() for i in vocab.items[r:r + width]] for r in range(n)], dtype=object)
    types = np.tile(np.arange(1, width + 1, dtype=np.int8) % 5 + 1, (n, 1))
    gaps = np.full((n, width), 600.0, dtype=np.float32)
    silence = np.full((n, 1), 86400.0, dtype=np.float32)
    a = predict(eager, vocab, items, types, gaps, silence, k=5)
    b = predict(exported, vocab, items, types, gaps, silence, k=5)
    if not (np.allclose(a[0], b[0], atol=0.02) and np.allclose(a[2], b[2], atol=0.02)):
        raise ValueError("encoder.pt2/heads.pt2 disagree with weights.pt (a stale export?)")


INPUTS = ("ITEM_IDS", "EVENT_TYPES", "GAPS", "SILENCE")
# Optional: silences [N, C] to score each row's churn at as well, answered in
# CHURN_AT_CHECKPOINTS [N, C] (the inactivity checkpoints of the member scored now).
AT_INPUT, AT_OUTPUT = "CHECKPOINT_SILENCE", "CHURN_AT_CHECKPOINTS"
CACHE_MODES = ("full", "incremental", "off")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        torch.set_num_threads(int(params.get("torch_threads", "1")))
        with open(os.path.join(HERE, "hparams.json")) as fh:
            hp = json.load(fh)
        self.vocab = ItemVocabulary.load(Path(HERE) / "vocab.json")
        state = torch.load(os.path.join(HERE, "weights.pt"), map_location="cpu", weights_only=True)
        trained_on = state.pop("_vocab_sha256")
        if bytes(trained_on.tolist()).decode() != self.vocab.sha256:
            raise pb_utils.TritonModelException("weights and vocab.json disagree")
        if params.get("vocab_sha256", self.vocab.sha256) != self.vocab.sha256:
            raise pb_utils.TritonModelException("config.pbtxt vocab_sha256 disagrees with vocab.json")
        self.model = MemberTransformer(len(self.vocab), hp["max_len"], hp["d_model"],
                                       hp["n_layers"], hp["n_heads"], 0.0,
                                       hp["churn_horizon_days"])
        self.model.load_state_dict(state)
        # KIND_GPU instances run on their GPU at the config's precision (configs/gpu.pbtxt: bf16).
        device = "cpu"
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        # "exported": the torch.export programs beside the weights (encoder.pt2,
        # heads.pt2), checked against them on a few rows before serving.
        network, precision = params.get("network", "eager"), params.get("precision", "fp32")
        try:
            self.model = prepare(self.model, device, precision)
            if network == "exported":
                exported = ExportedNetwork.load(HERE, device, precision)
                _same_network(self.model, exported, self.vocab)
                self.model = exported
            elif network != "eager":
                raise ValueError(f"network {network!r}: expected eager or exported")
        except (ValueError, OSError, RuntimeError) as exc:
            raise pb_utils.TritonModelException(str(exc)) from exc
        self.k = hp["top_k"]
        # encoder_cache: "full" reuses the encoding of a sequence seen before (a member
        # re-scored at a checkpoint), "incremental" also every block's keys and values, so
        # that a member's new events alone are encoded (eager network only), "off" none
        # (bench/gpu.py, whose requests repeat their rows); within encoder_cache_mb.
        mode, megabytes = params.get("encoder_cache", "full"), params.get("encoder_cache_mb", "1024")
        if mode not in CACHE_MODES or not megabytes.isdigit():
            raise pb_utils.TritonModelException(
                f"encoder_cache {mode!r} / encoder_cache_mb {megabytes!r}: expected one of "
                f"{', '.join(CACHE_MODES)} / a whole number of MB")
        self.cache = None if mode == "off" or megabytes == "0" else EncoderCache(
            int(megabytes) << 20, incremental=mode == "incremental")

    def execute(self, requests):
        # The dynamic batcher may hand over several requests: run them as one.
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in INPUTS]
                  for r in requests]
        sizes = [a[0].shape[0] for a in arrays]
        merged = [np.concatenate([a[i] for a in arrays]) for i in range(len(INPUTS))]
        at = [pb_utils.get_input_tensor_by_name(r, AT_INPUT) for r in requests]
        at = [None if t is None else t.as_numpy() for t in at]
        widths = [0 if a is None else a.shape[1] for a in at]
        later = None
        if any(a is not None for a in at):
            # Rows of requests without it (or narrower) get NaN silences, answered to no one.
            width = max(widths)
            silences = np.full((sum(sizes), width), np.nan, np.float32)
            start = 0
            for n, a in zip(sizes, at):
                if a is not None:
                    silences[start:start + n, :a.shape[1]] = a
                start += n
            churn, items, scores, later = predict(self.model, self.vocab, *merged, k=self.k,
                                                  cache=self.cache, at_silences=silences)
        else:
            churn, items, scores = predict(self.model, self.vocab, *merged, k=self.k, cache=self.cache)
        responses, start = [], 0
        for n, a, width in zip(sizes, at, widths):
            end = start + n
            outputs = [pb_utils.Tensor("CHURN_PROBABILITY", churn[start:end].reshape(-1, 1)),
                       pb_utils.Tensor("TOP_ITEMS", items[start:end]),
                       pb_utils.Tensor("TOP_SCORES", scores[start:end])]
            if a is not None:
                outputs.append(pb_utils.Tensor(AT_OUTPUT, np.ascontiguousarray(later[start:end, :width])))
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            start = end
        return responses
