"""Evaluator: metrics on the test split through the exported serving signature, on RAW inputs.

What is measured is exactly what TF Serving will answer. Metrics come overall and per slice, beside
the majority-class baseline (the class most frequent in the train split). The blessing says whether
the model clears the configured thresholds, beats the baseline, and is no worse than the champion
(the version served now, evaluated on the same split in the same step) by more than
``max_regression``; the Pusher reads it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from rnnpipe.dsl import Artifact, Component, Param
from rnnpipe.runner import fingerprint_dir
from rnnpipe.serving import latest_version

from .example_io import example_to_dict, read_examples
from .export import SIGNATURE
from .metrics import classification_metrics, confusion, majority_class
from .plots import plot_confusion_matrix


def predict_raw(model_dir: str, records: list[dict], batch_size: int = 256) -> dict[str, np.ndarray]:
    """Calls the SavedModel's serving signature on raw records, batch by batch."""
    fn = tf.saved_model.load(model_dir).signatures[SIGNATURE]
    names = list(fn.structured_input_signature[1])
    chunks: dict[str, list[np.ndarray]] = defaultdict(list)
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        out = fn(**{n: tf.constant([r[n] for r in batch]) for n in names})
        for k, v in out.items():
            chunks[k].append(v.numpy())
    return {k: np.concatenate(v) for k, v in chunks.items()}


def length_bucket(text: str, edges: list[int]) -> str:
    """'1-8', '9-16', ..., '33-inf': the whitespace-token count bucket of a text, for slicing."""
    n, low = len(str(text).split()), 1
    for edge in edges:
        if n <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}-inf"


def latest_champion(champion_dir: str | None) -> Path | None:
    """The version TF Serving serves now under ``champion_dir`` (the last pushed), if any."""
    if not champion_dir:
        return None
    version = latest_version(Path(champion_dir))
    return None if version is None else Path(champion_dir) / str(version)


def model_card(evaluation: dict, blessing: dict, inputs: dict[str, Artifact], params: dict) -> str:
    """A short Markdown model card: data, metrics overall and per slice beside the baseline, the gate."""
    splits = json.loads(inputs["examples"].path("splits.json").read_text())
    lines = ["# Model card", "", "## Data",
             f"- source: `{splits['source']}`",
             f"- examples per split: {', '.join(f'{k} {v}' for k, v in splits['counts'].items())}",
             f"- label `{params['label_key']}`: {', '.join(params['class_names'])}",
             "", f"## Metrics on the {params['split']} split (baseline: {evaluation['baseline']})", "",
             "| slice | n | accuracy | macro-F1 | baseline accuracy |", "|---|---|---|---|---|"]
    rows = {"overall": evaluation["overall"], **evaluation["slices"]}
    for name, s in rows.items():
        m, b = s["model"], s["baseline"]
        lines.append(f"| {name} | {m['count']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {b['accuracy']:.4f} |")
    if "champion" in evaluation:
        c = evaluation["champion"]
        lines += ["", f"Champion `{c['path']}`: {params['champion_metric']} {c[params['champion_metric']]:.4f}."]
    verdict = "blessed" if blessing["blessed"] else "NOT blessed: " + "; ".join(blessing["reasons"])
    lines += ["", "## Gate", f"- {verdict}", "", "## Lineage",
              f"- model: `{inputs['model'].uri}`", f"- examples: `{inputs['examples'].uri}`",
              "- parameters: the MLflow run's params (the resolved pipeline config)", ""]
    return "\n".join(lines)


def run_evaluator(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: Any) -> dict:
    examples = inputs["examples"].uri
    label_key, classes = params["label_key"], params["class_names"]
    test = [example_to_dict(e) for e in read_examples(examples, params["split"])]
    train_labels = np.array([example_to_dict(e)[label_key] for e in read_examples(examples, "train")])
    y_true = np.array([r[label_key] for r in test])
    preds = predict_raw(inputs["model"].uri, test)
    y_pred = preds[params["prediction_key"]].astype(np.int64)
    majority = majority_class(train_labels)
    y_base = np.full_like(y_true, majority)

    def both(idx: np.ndarray) -> dict:
        return {"model": classification_metrics(y_true[idx], y_pred[idx], len(classes)),
                "baseline": classification_metrics(y_true[idx], y_base[idx], len(classes))}

    everything = np.arange(len(test))
    evaluation = {"overall": both(everything), "slices": {}, "baseline": f"majority class '{classes[majority]}'"}
    slicers = {key: (lambda r, key=key: str(r.get(key))) for key in params["slice_keys"]}
    if params["length_feature"]:
        slicers["length"] = lambda r: length_bucket(r.get(params["length_feature"], ""), params["length_edges"])
    for name, slicer in slicers.items():
        labels = [slicer(r) for r in test]
        for value in sorted(set(labels)):
            evaluation["slices"][f"{name}:{value}"] = both(np.array([i for i, v in enumerate(labels) if v == value]))
    overall = evaluation["overall"]
    failures = [f"{name} {overall['model'].get(name, float('nan')):.4f} < threshold {minimum}"
                for name, minimum in params["thresholds"].items()
                if not overall["model"].get(name, float("nan")) >= minimum]
    if params["must_beat_baseline"] and not overall["model"]["accuracy"] > overall["baseline"]["accuracy"]:
        failures.append(f"accuracy {overall['model']['accuracy']:.4f} does not beat the baseline "
                        f"{overall['baseline']['accuracy']:.4f}")
    champion = latest_champion(params["champion_dir"])
    if champion is not None and params["max_regression"] is not None:
        metric = params["champion_metric"]
        champion_preds = predict_raw(str(champion), test)[params["prediction_key"]].astype(np.int64)
        theirs = classification_metrics(y_true, champion_preds, len(classes))[metric]
        ours = overall["model"][metric]
        evaluation["champion"] = {"path": str(champion), metric: theirs}
        ctx.log(f"champion {champion.name}: {metric} {theirs:.4f}; candidate {ours:.4f}")
        if ours < theirs - params["max_regression"]:
            failures.append(f"{metric} {ours:.4f} is worse than the champion's (version {champion.name}) "
                            f"{theirs:.4f} by more than {params['max_regression']}")
    blessing = {"blessed": not failures, "reasons": failures}

    out = outputs["evaluation"].path()
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=1))
    with open(out / "predictions.jsonl", "w") as fh:
        prob_key = params["probability_key"]
        for i, r in enumerate(test):
            fh.write(json.dumps({**r, "predicted": int(y_pred[i]),
                                 "probabilities": preds[prob_key][i].tolist()}) + "\n")
    plot_confusion_matrix(confusion(y_true, y_pred, len(classes)).tolist(), classes, out / "confusion_matrix.png")
    (outputs["blessing"].path("blessing.json")).write_text(json.dumps(blessing, indent=1))
    ctx.tracker.log_artifact(out / "confusion_matrix.png", "plots")
    ctx.tracker.log_artifact(out / "evaluation.json", "evaluation")
    card = out / "model_card.md"
    card.write_text(model_card(evaluation, blessing, inputs, params))
    ctx.tracker.log_artifact(card, "evaluation")
    sample = out / "predictions_sample.jsonl"
    sample.write_text("".join((out / "predictions.jsonl").read_text().splitlines(keepends=True)[:200]))
    ctx.tracker.log_artifact(sample, "evaluation")
    ctx.tracker.set_tag("rnnpipe.blessed", str(blessing["blessed"]).lower())
    for reason in failures:
        ctx.log(f"NOT BLESSED: {reason}")

    metrics = {f"test_{k}": v for k, v in overall["model"].items() if k in ("accuracy", "macro_f1")}
    metrics.update({f"baseline_{k}": v for k, v in overall["baseline"].items() if k in ("accuracy", "macro_f1")})
    for name, s in evaluation["slices"].items():
        metrics[f"test_accuracy.{name}"] = s["model"]["accuracy"]
        metrics[f"baseline_accuracy.{name}"] = s["baseline"]["accuracy"]
    metrics["blessed"] = float(blessing["blessed"])
    return metrics


class Evaluator(Component):
    INPUTS = {"model": "Model", "examples": "Examples"}
    OUTPUTS = {"evaluation": "ModelEvaluation", "blessing": "ModelBlessing"}
    PARAMETERS = {
        "label_key": Param(str),
        "class_names": Param(list),
        "split": Param(str, "test"),
        "prediction_key": Param(str, "label_id", doc="serving output holding the predicted class index"),
        "probability_key": Param(str, "probabilities"),
        "slice_keys": Param(list, [], doc="raw features whose values define slices"),
        "length_feature": Param((str, type(None)), None, doc="a text feature to slice by token count"),
        "length_edges": Param(list, [8, 16, 32], doc="upper edges of the token-count buckets"),
        "thresholds": Param(dict, {}, doc="metric -> minimum value for a blessing"),
        "must_beat_baseline": Param(bool, True),
        "champion_dir": Param((str, type(None)), None, doc="serving folder of the model the candidate must match"),
        "champion_metric": Param(str, "accuracy"),
        "max_regression": Param((float, type(None)), None, doc="how much worse than the champion still passes"),
    }
    executor = staticmethod(run_evaluator)

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        # The champion is read from outside the pipeline: another pushed model invalidates the evaluation,
        # the candidate itself (pushed by the previous run) does not.
        champion = latest_champion(self.params["champion_dir"])
        if champion is None:
            return ""
        theirs = fingerprint_dir(champion / "saved_model.pb")
        return "" if theirs == fingerprint_dir(inputs["model"].path("saved_model.pb")) else f"{champion}:{theirs}"
