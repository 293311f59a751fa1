"""Evaluator: metrics on the test split through the exported serving signature, on RAW inputs.

What is measured is exactly what TF Serving will answer. The application's metrics function (a code
reference; classification by default) computes metrics overall and per slice beside a baseline (and
any peer model it fits). The blessing says whether the model clears the configured thresholds, beats
the baseline on the primary metric, and is no worse than the champion (the version served now,
scored on the same split in the same step) by more than ``max_regression``; the Pusher reads it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rnnpipe.artifacts import Examples, Model, ModelBlessing, ModelEvaluation
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import ConfigError
from rnnpipe.serving import SIGNATURE, latest_champion, read_push_record, served_fingerprint

from .example_io import example_to_dict, read_examples
from .task import request_preparer


class EvalContext:
    """What a metrics function gets: the split's raw records and what the serving signature answers for them.

    ``batches()`` streams them from the example files, one signature call per batch, so a metrics function that
    accumulates (counts, sums, a confusion matrix per slice) scores a split of any size in constant memory.
    ``records`` and ``predictions`` hold the whole split, read on first use, for metrics that need every
    example at once. A context made from in-memory ``records`` and ``predictions`` (tests) streams those.
    ``out_dir`` is None when only the champion is scored: then only ``overall.model`` of the result is read,
    so baselines, peers, plots and files may be skipped.
    """

    def __init__(self, records: list[dict] | None, predictions: dict[str, np.ndarray] | None, config: dict,
                 out_dir: Path | None, examples_uri: str, log: Callable[[str], None] = print,
                 train: list[dict] | None = None, model_dir: str | None = None, *, split: str = "test",
                 signature: str = SIGNATURE, batch_size: int = 256,
                 as_request: Callable[[dict], dict] | None = None) -> None:
        if (records is None) != (predictions is None):
            raise ValueError("EvalContext takes both records and predictions, or neither (then it streams them)")
        self._records, self._predictions, self._train = records, predictions, train
        self.config, self.out_dir, self.examples_uri, self.log = config, out_dir, examples_uri, log
        self.model_dir = model_dir  # the SavedModel scored, for metrics that call it again (e.g. to sample)
        self.split, self.signature, self.batch_size = split, signature, batch_size
        self.as_request = as_request or (lambda record: record)  # what a client sends for a stored record

    def batches(self) -> Iterator[tuple[list[dict], dict[str, np.ndarray]]]:
        """(records, outputs) of up to ``batch_size`` examples at a time, in the split's order."""
        if self._records is not None:
            for start in range(0, len(self._records), self.batch_size):
                yield (self._records[start:start + self.batch_size],
                       {k: v[start:start + self.batch_size] for k, v in self._predictions.items()})
            return
        call = signature_caller(self.model_dir, self.signature)
        for batch in chunked(self.iter_records(self.split), self.batch_size):
            yield batch, call([self.as_request(r) for r in batch])

    def iter_records(self, split: str) -> Iterator[dict]:
        """A split's raw records one by one, from the example files (the train split: from memory once read)."""
        if split == "train" and self._train is not None:
            return iter(self._train)
        return (example_to_dict(e) for e in read_examples(self.examples_uri, split))

    @property
    def records(self) -> list[dict]:
        self._materialize()
        return self._records

    @property
    def predictions(self) -> dict[str, np.ndarray]:
        self._materialize()
        return self._predictions

    def _materialize(self) -> None:
        if self._records is None:
            records, chunks = [], defaultdict(list)
            for batch, outputs in self.batches():
                records += batch
                for k, v in outputs.items():
                    chunks[k].append(v)
            self._records, self._predictions = records, {k: np.concatenate(v) for k, v in chunks.items()}

    def train_records(self) -> list[dict]:
        if self._train is None:
            self._train = list(self.iter_records("train"))
        return self._train


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_serving_model(model_dir: str | Path) -> Any:
    """The SavedModel as TF Serving would load it: with the TF-Text ops registered (TF Serving links them)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(str(model_dir))


def signature_caller(model_dir: str, signature: str = SIGNATURE) -> Callable[[list[dict]], dict[str, np.ndarray]]:
    """A function calling one of the SavedModel's signatures on a batch of raw records (the model loads once)."""
    import tensorflow as tf

    loaded = load_serving_model(model_dir)
    if signature not in loaded.signatures:
        raise ConfigError(f"{model_dir} has no signature '{signature}'; it has {sorted(loaded.signatures)}")
    fn = loaded.signatures[signature]
    specs = fn.structured_input_signature[1]

    def call(batch: list[dict]) -> dict[str, np.ndarray]:
        _ = loaded  # the signature's variables live as long as the loaded model
        out = fn(**{n: tf.constant([r[n] for r in batch], dtype=spec.dtype) for n, spec in specs.items()})
        return {k: v.numpy() for k, v in out.items()}

    return call


def predict_raw(model_dir: str, records: list[dict], batch_size: int = 256, signature: str = SIGNATURE,
                as_request: Callable[[dict], dict] | None = None) -> dict[str, np.ndarray]:
    """Calls one of the SavedModel's signatures on raw records (as ``as_request`` makes them), batch by batch."""
    call = signature_caller(model_dir, signature)
    chunks: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in chunked(records, batch_size):
        for k, v in call([as_request(r) for r in batch] if as_request else batch).items():
            chunks[k].append(v)
    return {k: np.concatenate(v) for k, v in chunks.items()}


def signature_inputs(model_dir: str | Path, signature: str) -> dict[str, str] | None:
    """A SavedModel's inputs to ``signature`` as name -> 'dtype[shape]' (-1: any size), read from
    saved_model.pb without loading the model; None when it has no such signature."""
    import tensorflow as tf

    proto = Model.read_proto(model_dir)
    signatures = proto.meta_graphs[0].signature_def
    if signature not in signatures:
        return None
    described = {}
    for name, info in sorted(signatures[signature].inputs.items()):
        shape = info.tensor_shape
        dims = "?" if shape.unknown_rank else ", ".join(str(d.size) for d in shape.dim)
        described[name] = f"{tf.dtypes.as_dtype(info.dtype).name}[{dims}]"
    return described


def comparable_champion(champion: Path | None, candidate: str, signature: str, log: Callable[[str], None],
                        data_source: dict | None = None) -> Path | None:
    """The champion, or None when it was trained on another data source (path pattern or fields, as its push
    recorded) or its ``signature`` takes other inputs (names, dtypes, shapes) than the candidate's: a model
    for other data (another CSV, another series' window length) is no champion for this one."""
    if champion is None:
        return None
    trained_on = read_push_record(champion).get("data_source")
    if data_source is not None and trained_on is not None and trained_on != data_source:
        log(f"served model {champion} is no champion: it was trained on {trained_on['pattern']} (fields "
            f"{sorted(trained_on['fields'])}), the candidate on {data_source['pattern']} (fields "
            f"{sorted(data_source['fields'])}); the candidate is judged by thresholds and baseline only "
            "(pusher.model_name gives each dataset its own served model)")
        return None
    theirs, ours = signature_inputs(champion, signature), signature_inputs(candidate, signature)
    if theirs == ours:
        return champion
    def shown(inputs: dict[str, str] | None) -> str:
        return ", ".join(f"{k} {v}" for k, v in inputs.items()) if inputs is not None else "none (no such signature)"

    log(f"served model {champion} is no champion: its '{signature}' inputs are {shown(theirs)}, the candidate's "
        f"{shown(ours)}; the candidate is judged by thresholds and baseline only")
    return None


def _bounds(spec: Any) -> tuple[float | None, float | None]:
    """A threshold is a lower bound, or {lower_bound: x, upper_bound: y} (TFX's GenericValueThreshold)."""
    if isinstance(spec, dict):
        unknown = set(spec) - {"lower_bound", "upper_bound"}
        if unknown:
            raise ConfigError(f"evaluator.thresholds: unknown key(s) {sorted(unknown)}; "
                              "expected a number or {lower_bound: x, upper_bound: y}")
        return spec.get("lower_bound"), spec.get("upper_bound")
    return spec, None


def gate(evaluation: dict, params: dict) -> list[str]:
    """The reasons not to bless (empty = blessed), from thresholds, the peers, the baseline and the champion."""
    model, baseline = evaluation["overall"]["model"], evaluation["overall"].get("baseline", {})
    failures = []
    for name, spec in params["thresholds"].items():
        value = model.get(name, float("nan"))
        low, high = _bounds(spec)
        if low is not None and not value >= low:
            failures.append(f"{name} {value:.4f} < threshold {low}")
        if high is not None and not value <= high:
            failures.append(f"{name} {value:.4f} > threshold {high}")
    primary, higher = params["primary_metric"], params["higher_is_better"]
    ours = model.get(primary, float("nan"))

    def beats(theirs: float) -> bool:  # NaN on either side never beats
        return ours > theirs if higher else ours < theirs

    if params.get("must_beat_peers"):
        for name, values in evaluation["overall"].items():
            theirs = values.get(primary, float("nan"))
            if name.startswith("peer/") and not beats(theirs):
                failures.append(f"{primary} {ours:.4f} does not beat the peer {name[5:]} {theirs:.4f}")
    if params["must_beat_baseline"]:
        theirs = baseline.get(primary, float("nan"))
        if not beats(theirs):
            failures.append(f"{primary} {ours:.4f} does not beat the baseline {theirs:.4f}")
    champion = evaluation.get("champion")
    if champion is not None:
        theirs, margin = champion[primary], params["max_regression"]
        if (ours < theirs - margin) if higher else (ours > theirs + margin):
            failures.append(f"{primary} {ours:.4f} is worse than the champion's (version "
                            f"{Path(champion['path']).name}) {theirs:.4f} by more than {margin}")
    return failures


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(evaluation: dict, blessing: dict, inputs: dict[str, Artifact], params: dict) -> str:
    """A short Markdown model card: data, metrics overall and per slice beside the baseline, the gate."""
    splits = Examples.read_info(inputs["examples"])
    names = evaluation.get("card_metrics") or sorted(evaluation["overall"]["model"])
    peers = [p for p in evaluation["overall"] if p != "model"]
    lines = ["# Model card", "", "## Data",
             f"- source: `{splits.source}`",
             f"- examples per split: {', '.join(f'{k} {v}' for k, v in splits.counts.items())}",
             "", f"## Metrics on the {params['split']} split (baseline: {evaluation.get('baseline', 'none')})", "",
             "| slice | " + " | ".join(names) + "".join(f" | {p} {params['primary_metric']}" for p in peers) + " |",
             "|---" * (1 + len(names) + len(peers)) + "|"]
    rows = {"overall": evaluation["overall"], **evaluation.get("slices", {})}
    for name, s in rows.items():
        cells = [_fmt(s["model"].get(m, "")) for m in names]
        cells += [_fmt(s.get(p, {}).get(params["primary_metric"], "")) for p in peers]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "champion" in evaluation:
        c = evaluation["champion"]
        lines += ["", f"Champion `{c['path']}`: {params['primary_metric']} {c[params['primary_metric']]:.4f}."]
    verdict = "blessed" if blessing["blessed"] else "NOT blessed: " + "; ".join(blessing["reasons"])
    lines += ["", "## Gate", f"- {verdict}", "", "## Lineage",
              f"- model: `{inputs['model'].uri}`", f"- examples: `{inputs['examples'].uri}`",
              "- parameters: the MLflow run's params (the resolved pipeline config)", ""]
    return "\n".join(lines)


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def run_evaluator(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                  ctx: ExecutionContext) -> dict:
    examples = inputs["examples"].uri
    metrics_fn = Ref(params["metrics"]).resolve()
    data_source = Examples.read_info(inputs["examples"]).data_source
    out = outputs["evaluation"].path()
    streamed = {"split": params["split"], "signature": params["signature"],
                "as_request": request_preparer(params["task"])}
    ev = EvalContext(None, None, params["metrics_config"], out, examples, ctx.log, model_dir=inputs["model"].uri,
                     **streamed)
    streamed_call = {"signature": params["signature"], "as_request": streamed["as_request"]}
    evaluation = metrics_fn(ev)
    artifacts = evaluation.pop("artifacts", [])
    primary = params["primary_metric"]
    if primary not in evaluation["overall"]["model"]:
        raise ConfigError(f"evaluator.primary_metric '{primary}' is not among the metrics "
                          f"{sorted(evaluation['overall']['model'])}")
    champion = None
    if params["max_regression"] is not None:
        champion = comparable_champion(latest_champion(params["champion_dir"]), inputs["model"].uri,
                                       params["signature"], ctx.log, data_source)
    if champion is not None:
        import tensorflow as tf

        try:
            theirs = None if ev._records is None else predict_raw(str(champion), ev._records, **streamed_call)
            theirs_ev = EvalContext(ev._records, theirs, params["metrics_config"], None, examples, ctx.log,
                                    ev._train, str(champion), **streamed)
            theirs = metrics_fn(theirs_ev)["overall"]["model"][primary]
        except tf.errors.InvalidArgumentError as e:  # its own checks refuse these records (another series' start)
            lines = [line.strip() for line in e.message.splitlines() if line.strip()]
            reason = next((line for line in lines if "assertion failed" in line), lines[-1] if lines else "")
            ctx.log(f"served model {champion} is no champion: it refuses these records ({reason[:300]}); the "
                    "candidate is judged by thresholds and baseline only")
            champion = None
    if champion is not None:
        evaluation["champion"] = {"path": str(champion), primary: theirs}
        ctx.log(f"champion {champion.name}: {primary} {theirs:.4f}; "
                f"candidate {evaluation['overall']['model'][primary]:.4f}")
    failures = gate(evaluation, params)
    summary = ModelEvaluation.primary_summary(evaluation, params["primary_metric"], params["higher_is_better"])
    blessing = {"blessed": not failures, "reasons": failures}

    evaluation_file = ModelEvaluation.write(out, evaluation)
    ModelBlessing.write(outputs["blessing"], blessing["blessed"], blessing["reasons"],
                        {**summary, "data_source": data_source})
    card = out / "model_card.md"
    card.write_text(model_card(evaluation, blessing, inputs, params))
    for path, artifact_dir in [*artifacts, (evaluation_file, "evaluation"), (card, "evaluation")]:
        ctx.tracker.log_artifact(Path(path), artifact_dir)
    ctx.tracker.set_tag("rnnpipe.blessed", str(blessing["blessed"]).lower())
    for reason in failures:
        ctx.log(f"NOT BLESSED: {reason}")

    overall = evaluation["overall"]
    shown = set(evaluation.get("card_metrics") or overall["model"])
    metrics = {}
    def key(peer: str, metric: str) -> str:  # test_accuracy, baseline_accuracy, peer/<name>/accuracy
        return f"{peer}/{metric}" if peer.startswith("peer/") else f"{'test' if peer == 'model' else peer}_{metric}"

    for peer, values in overall.items():
        metrics.update({key(peer, k): v for k, v in _scalars(values).items() if k in shown})
    for name, s in evaluation.get("slices", {}).items():
        for peer, values in s.items():
            if primary in values and math.isfinite(values[primary]):
                metrics[f"{key(peer, primary)}.{name}"] = float(values[primary])
    metrics["blessed"] = float(blessing["blessed"])
    metrics.update(summary)
    return metrics


class Evaluator(Component):
    INPUTS = {"model": Model.TYPE, "examples": Examples.TYPE}
    OUTPUTS = {"evaluation": ModelEvaluation.TYPE, "blessing": ModelBlessing.TYPE}
    PARAMETERS = {
        "metrics": Param(Ref, "rnnpipe.components.metrics:evaluate_classification",
                         doc="'module:function' taking an EvalContext, returning overall/slices metrics"),
        "metrics_config": Param(dict, {}, doc="what the metrics function reads (label key, slices, ...): the "
                                              "config's evaluator.metrics plus what the application derives"),
        "split": Param(str, "test"),
        "signature": Param(str, SIGNATURE, doc="the serving signature whose outputs are scored"),
        "task": Param(Ref, None, doc="'module:TASK': its request_features turn a stored record into a request"),
        "primary_metric": Param(str, "accuracy", doc="compared with the baseline and the champion"),
        "higher_is_better": Param(bool, True, doc="direction of the primary metric"),
        "thresholds": Param(dict, {}, doc="metric -> lower bound, or {lower_bound: x, upper_bound: y}"),
        "must_beat_baseline": Param(bool, True),
        "must_beat_peers": Param(bool, False, doc="bless only a model ahead of every peer (evaluator.metrics.peers) "
                                                  "on the primary metric"),
        "champion_dir": Param((str, type(None)), None, doc="serving folder of the model the candidate must match"),
        "max_regression": Param((float, type(None)), None, doc="how much worse than the champion still passes",
                                min=0),
    }
    executor = staticmethod(run_evaluator)

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        # The champion is read from outside the pipeline: another pushed model invalidates the evaluation,
        # the candidate itself (pushed by the previous run) does not.
        served = served_fingerprint(self.params["champion_dir"])
        if served is None:
            return ""
        where, theirs = served
        return "" if theirs == inputs["model"].fingerprint else f"{where}:{theirs}"
