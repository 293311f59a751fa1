from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.core.protobuf import saved_model_pb2

from rnnpipe.artifacts import InfraBlessing
from rnnpipe.components.example_io import write_examples
from rnnpipe.components.infra_validator import InfraValidator, read_warmup, run_infra_validator
from rnnpipe.dsl import Artifact
from rnnpipe.errors import DataError


class Scorer(tf.Module):
    """A stand-in serving model: counts whitespace tokens with a TF-Text op."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict:
        tokens = tf_text.WhitespaceTokenizer().tokenize(text)
        return {"length": tokens.row_lengths()}


class Truncator(tf.Module):
    """A stand-in with an input the examples lack: keeps the first ``limit`` tokens (a scalar)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int64, name="limit")])
    def serve(self, text: tf.Tensor, limit: tf.Tensor) -> dict:
        tokens = tf_text.WhitespaceTokenizer().tokenize(text)
        return {"length": tf.minimum(tokens.row_lengths(), limit)}


def save_model(path: Path, module: tf.Module | None = None) -> Path:
    module = module or Scorer()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


class Recorder:
    def __init__(self) -> None:
        self.tags: dict = {}

    def set_tag(self, key: str, value: str) -> None:
        self.tags[key] = value


DEFAULTS = {k: p.default for k, p in InfraValidator.PARAMETERS.items() if not p.required}


def validate(tmp_path: Path, model: Path, **params) -> tuple[dict, Path, Recorder]:
    examples = tmp_path / "examples"
    rows = [("test", {"text": f"sentence {'word ' * i}"}) for i in range(20)]
    write_examples(rows, {"text": "bytes"}, examples, ["test"], 1)
    out = tmp_path / "blessing"
    out.mkdir()
    ctx = SimpleNamespace(tracker=Recorder(), log=lambda m: None)
    metrics = run_infra_validator(
        {"model": Artifact("model", "Model", str(model)), "examples": Artifact("examples", "Examples", str(examples))},
        {"infra_blessing": Artifact("infra_blessing", "InfraBlessing", str(out))},
        {**DEFAULTS, "model_name": "demo", "warmup_requests": 5, **params}, ctx)
    return metrics, out, ctx.tracker


def test_serving_model_is_blessed_and_warmup_requests_parse_and_replay(tmp_path: Path) -> None:
    metrics, out, tracker = validate(tmp_path, save_model(tmp_path / "model"))
    assert metrics["infra_blessed"] == 1.0 and tracker.tags["rnnpipe.infra_blessed"] == "true"
    logs = read_warmup(InfraBlessing.warmup_path(out))
    assert len(logs) == 5
    request = logs[2].predict_log.request
    assert request.model_spec.name == "demo" and request.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(request.inputs["text"]).tolist() == [b"sentence word word "]
    assert metrics["latency_b32_p50_ms"] > 0 and metrics["load_seconds"] > 0
    blessing = InfraBlessing.read(out)
    assert blessing.blessed and blessing.reasons == [] and blessing.details["warmup_replayed"] == 5
    assert (out / InfraBlessing.BLESSED).exists() and not (out / InfraBlessing.NOT_BLESSED).exists()


def test_an_op_outside_tf_serving_is_named_and_not_blessed(tmp_path: Path) -> None:
    model = save_model(tmp_path / "model")
    pb = model / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    node = next(n for f in saved.meta_graphs[0].graph_def.library.function for n in f.node_def
                if n.op == "StringSplitV2" or "Whitespace" in n.op)
    node.op = "RnnpipeBogusOp"
    pb.write_bytes(saved.SerializeToString())
    metrics, out, tracker = validate(tmp_path, model)
    assert metrics == {"infra_blessed": 0.0} and tracker.tags["rnnpipe.infra_blessed"] == "false"
    blessing = InfraBlessing.read(out)
    assert not blessing.blessed and (out / InfraBlessing.NOT_BLESSED).exists()
    [reason] = blessing.reasons
    assert "ops not in TF Serving's op set" in reason and "RnnpipeBogusOp" in reason


def test_inputs_the_examples_lack_come_from_request_defaults(tmp_path: Path) -> None:
    model = save_model(tmp_path / "model", Truncator())
    with pytest.raises(DataError, match="takes 'limit'.*infra_validator.request_defaults.limit"):
        validate(tmp_path, model)
    metrics, out, _ = validate(tmp_path / "again", model, request_defaults={"limit": 2})
    assert metrics["infra_blessed"] == 1.0
    request = read_warmup(InfraBlessing.warmup_path(out))[0].predict_log.request
    assert tf.make_ndarray(request.inputs["limit"]) == 2 and request.inputs["limit"].tensor_shape.dim == []


def test_a_missing_signature_to_time_is_named(tmp_path: Path) -> None:
    metrics, out, _ = validate(tmp_path, save_model(tmp_path / "model"), timed_signatures=["beam"])
    assert metrics == {"infra_blessed": 0.0}
    assert "no signature ['beam']" in InfraBlessing.read(out).reasons[0]
