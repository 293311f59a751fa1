"""InfraValidator: would TF Serving load and answer this model? Checked without Docker.

In a fresh subprocess that imports only tensorflow and tensorflow_text (what a stock TF Serving build
links): every op in the SavedModel's graphs must be registered, the model must load, the warmup
requests must replay, and load time and p50/p99 latency at batch 1 and 32 are measured within a
time limit. The warmup requests (PredictionLog records, from real test examples) are written to the
blessing; the Pusher puts them in ``assets.extra/`` so TF Serving replays them before serving.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rnnpipe.artifacts import Examples, InfraBlessing, Model
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import DataError
from rnnpipe.serving import SIGNATURE

from .example_io import example_to_dict, read_examples
from .task import request_preparer

WARMUP_FILE = InfraBlessing.WARMUP_FILE

# Runs in the fresh process: tensorflow + tensorflow_text only, like TF Serving.
_PROBE = r"""
import base64, json, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401  (TF Serving links the TF-Text ops)
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

model_dir = sys.argv[1]
sent = json.load(open(sys.argv[2]))  # a file, not arguments: a batch of audio exceeds the argument limit
saved = saved_model_pb2.SavedModel.FromString(open(model_dir + "/saved_model.pb", "rb").read())
ops = set()
for meta in saved.meta_graphs:
    ops.update(n.op for n in meta.graph_def.node)
    for fn in meta.graph_def.library.function:
        ops.update(n.op for n in fn.node_def)
unknown = sorted(op for op in ops if op_def_registry.get(op) is None)
if unknown:
    print(json.dumps({"ok": False, "unknown_ops": unknown, "op_count": len(ops)}))
    sys.exit(0)
start = time.perf_counter()
loaded = tf.saved_model.load(model_dir)
fn = loaded.signatures["serving_default"]
load_s = time.perf_counter() - start
missing = sorted(set(sent["signatures"]) - set(loaded.signatures))
if missing:
    print(json.dumps({"ok": False, "reason": f"no signature {missing}; it has {sorted(loaded.signatures)}"}))
    sys.exit(0)
def tensors(request):
    return {k: tf.constant(tf.make_ndarray(tensor_pb2.TensorProto.FromString(base64.b64decode(v))))
            for k, v in request.items()}
requests = [tensors(r) for r in sent["requests"]]
for request in requests:
    fn(**request)
latency = {}
for name in sent["signatures"]:
    for batch, request in sent["batches"].items():
        inputs = tensors(request)
        loaded.signatures[name](**inputs)
        times, until = [], time.perf_counter() + 2.0  # 30 calls, or at least 5 within 2 s for a slow model
        while len(times) < 30 and (len(times) < 5 or time.perf_counter() < until):
            t = time.perf_counter()
            loaded.signatures[name](**inputs)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        latency.setdefault(name, {})[batch] = {"p50_ms": times[len(times) // 2], "p99_ms": times[-1]}
print(json.dumps({"ok": True, "op_count": len(ops), "load_s": load_s, "warmup_replayed": len(requests),
                  "latency": latency}))
"""


def request_inputs(records: list[dict], inputs: dict[str, Any], defaults: dict) -> dict[str, Any]:
    """Tensor protos for one request over ``records``: batched features from the records; inputs the
    examples lack (a generation length, a temperature) from ``defaults``, scalar where the signature is.
    ``inputs``: the signature's TensorInfo per input name (dtype and rank)."""
    import tensorflow as tf

    out = {}
    for name, info in inputs.items():
        dtype = tf.as_dtype(info.dtype)
        if all(name in r for r in records):
            out[name] = tf.make_tensor_proto([r[name] for r in records], dtype=dtype)
        elif name in defaults:
            value = defaults[name]
            scalar = len(info.tensor_shape.dim) == 0
            out[name] = tf.make_tensor_proto(value if scalar else [value] * len(records), dtype=dtype)
        else:
            raise DataError(f"InfraValidator: the serving signature takes '{name}', which the examples do not "
                            f"have; set infra_validator.request_defaults.{name}")
    return out


def warmup_requests(records: list[dict], inputs: dict[str, Any], model_name: str, defaults: dict | None = None
                    ) -> list[Any]:
    """One PredictRequest per record, as TF Serving's PredictionLog warmup format."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    logs = []
    for record in records:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name,
                                                                            signature_name=SIGNATURE))
        for name, proto in request_inputs([record], inputs, defaults or {}).items():
            request.inputs[name].CopyFrom(proto)
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def read_warmup(path: Path) -> list[Any]:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    return [prediction_log_pb2.PredictionLog.FromString(raw)
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]


def _encode(inputs: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64encode(v.SerializeToString()).decode() for k, v in inputs.items()}


def probe(model_dir: str, requests: list[dict[str, str]], batches: dict[str, dict[str, str]],
          timeout_s: int, signatures: list[str] | None = None) -> dict:
    """Runs the serving probe in a fresh process: it replays ``requests`` on ``serving_default`` and times each
    of ``signatures`` (default: serving_default) on ``batches``; returns its report (ok False with a reason)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
        json.dump({"requests": requests, "batches": batches, "signatures": signatures or [SIGNATURE]}, fh)
        fh.flush()
        try:
            proc = subprocess.run([sys.executable, "-c", _PROBE, model_dir, fh.name],
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"ok": False, "reason": f"the model did not load and answer within {timeout_s}s"}
    if proc.returncode != 0:
        return {"ok": False, "reason": f"the serving probe failed: {proc.stderr.strip()[-1500:]}"}
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report.get("unknown_ops"):
        report["reason"] = ("ops not in TF Serving's op set (core TensorFlow + TF-Text): "
                            + ", ".join(report["unknown_ops"]))
    return report


def run_infra_validator(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                        ctx: ExecutionContext) -> dict:
    import tensorflow as tf

    model_dir = inputs["model"].uri
    # Read from the proto, not by loading: this process may lack ops the check is about to report.
    saved = Model.read_proto(model_dir)
    signature = saved.meta_graphs[0].signature_def[SIGNATURE]
    specs = {name: signature.inputs[name] for name in sorted(signature.inputs)}
    # As clients send them; 32 records at most are needed (the warmup sample and a batch of 32).
    as_request = request_preparer(params["task"])
    wanted = max(32, params["warmup_requests"])
    stored = itertools.islice(read_examples(inputs["examples"].uri, params["split"]), wanted)
    records = [as_request(example_to_dict(e)) for e in stored]
    if not records:
        raise DataError(f"InfraValidator: the {params['split']} split has no examples to send")
    sample = records[:params["warmup_requests"]]
    defaults = params["request_defaults"]
    logs = warmup_requests(sample, specs, params["model_name"], defaults)
    out = outputs["infra_blessing"].path()
    warmup = InfraBlessing.warmup_path(out)
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    requests = [_encode(dict(log.predict_log.request.inputs)) for log in read_warmup(warmup)]
    batches = {str(b): _encode(request_inputs((records * b)[:b], specs, defaults)) for b in (1, 32)}
    timed = [SIGNATURE, *(s for s in params["timed_signatures"] if s != SIGNATURE)]
    report = probe(model_dir, requests, batches, params["timeout_s"], timed)
    blessed = bool(report.get("ok"))
    InfraBlessing.write(out, blessed, [] if blessed else [report["reason"]], report)
    ctx.tracker.set_tag("rnnpipe.infra_blessed", str(blessed).lower())
    if not blessed:
        ctx.log(f"NOT BLESSED: {report['reason']}")
        return {"infra_blessed": 0.0}
    ctx.log(f"loads in {report['load_s']:.2f}s, replayed {report['warmup_replayed']} warmup requests")
    metrics = {"infra_blessed": 1.0, "load_seconds": report["load_s"]}
    for name, lat in report["latency"].items():
        ctx.log(f"{name}: p50 {lat['1']['p50_ms']:.1f} ms at batch 1, {lat['32']['p50_ms']:.1f} ms at batch 32")
        prefix = "latency" if name == SIGNATURE else f"latency_{name}"
        metrics.update({f"{prefix}_b{b}_{k}": v for b, values in lat.items() for k, v in values.items()})
    return metrics


class InfraValidator(Component):
    INPUTS = {"model": Model.TYPE, "examples": Examples.TYPE}
    OUTPUTS = {"infra_blessing": InfraBlessing.TYPE}
    PARAMETERS = {
        "model_name": Param(str),
        "split": Param(str, "test"),
        "warmup_requests": Param(int, 16, doc="real examples written as warmup requests", min=0),
        "timeout_s": Param(int, 300, doc="fail if the model does not load and answer within this time",
                           min=0, min_exclusive=True),
        "request_defaults": Param(dict, {}, doc="values for signature inputs the examples lack"),
        "task": Param(Ref, None, doc="'module:TASK': its request_features turn a stored record into a request"),
        "timed_signatures": Param(list, [], doc="signatures timed beside serving_default (same inputs), e.g. "
                                                "greedy and beam decoding"),
    }
    executor = staticmethod(run_infra_validator)
