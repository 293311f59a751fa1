"""Classification metrics, the majority-class baseline, and the Evaluator's default metrics function."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .plots import plot_confusion_matrix


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class F1; an empty input gives NaNs rather than an error."""
    if len(y_true) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "count": 0}
    m = confusion(y_true, y_pred, num_classes)
    tp = np.diag(m).astype(float)
    precision = np.divide(tp, m.sum(0), out=np.zeros_like(tp), where=m.sum(0) > 0)
    recall = np.divide(tp, m.sum(1), out=np.zeros_like(tp), where=m.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    present = m.sum(1) > 0
    out = {"accuracy": float(tp.sum() / m.sum()), "macro_f1": float(f1[present].mean()), "count": int(m.sum())}
    out.update({f"f1_class_{i}": float(f1[i]) for i in range(num_classes)})
    return out


def majority_class(labels: np.ndarray) -> int:
    values, counts = np.unique(labels, return_counts=True)
    return int(values[np.argmax(counts)])


def length_bucket(text: str, edges: list[int]) -> str:
    """'1-8', '9-16', ..., '33-inf': the whitespace-token count bucket of a text, for slicing."""
    n, low = len(str(text).split()), 1
    for edge in edges:
        if n <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}-inf"


CLASSIFICATION_DEFAULTS = {
    "label_key": "label", "class_names": None, "prediction_key": "label_id", "probability_key": "probabilities",
    "slice_keys": [], "length_feature": None, "length_edges": [8, 16, 32],
}


def evaluate_classification(ev: Any) -> dict:
    """Accuracy and F1 overall, per value of ``slice_keys`` and per length bucket of ``length_feature``,
    beside the majority class of the train split; a confusion matrix and the predictions as files.

    ``ev`` is the Evaluator's EvalContext; ``ev.config`` keys: see CLASSIFICATION_DEFAULTS
    (``class_names`` is required)."""
    cfg = {**CLASSIFICATION_DEFAULTS, **ev.config}
    classes, label_key = cfg["class_names"], cfg["label_key"]
    if not classes:
        raise ValueError("evaluator.metrics.class_names is required for classification metrics")
    test = ev.records
    y_true = np.array([r[label_key] for r in test], dtype=np.int64)
    y_pred = ev.predictions[cfg["prediction_key"]].astype(np.int64)
    if ev.out_dir is None:  # scoring the champion: the overall model metrics are all that is read
        return {"overall": {"model": classification_metrics(y_true, y_pred, len(classes))}}
    majority = majority_class(np.array([r[label_key] for r in ev.train_records()]))
    y_base = np.full_like(y_true, majority)

    def both(idx: np.ndarray) -> dict:
        return {"model": classification_metrics(y_true[idx], y_pred[idx], len(classes)),
                "baseline": classification_metrics(y_true[idx], y_base[idx], len(classes))}

    evaluation = {"overall": both(np.arange(len(test))), "slices": {}, "baseline": f"majority class "
                  f"'{classes[majority]}'", "card_metrics": ["count", "accuracy", "macro_f1"]}
    slicers = {key: (lambda r, key=key: str(r.get(key))) for key in cfg["slice_keys"]}
    if cfg["length_feature"]:
        slicers["length"] = lambda r: length_bucket(r.get(cfg["length_feature"], ""), cfg["length_edges"])
    for name, slicer in slicers.items():
        labels = [slicer(r) for r in test]
        for value in sorted(set(labels)):
            evaluation["slices"][f"{name}:{value}"] = both(np.array([i for i, v in enumerate(labels) if v == value]))

    out = ev.out_dir
    probabilities = ev.predictions[cfg["probability_key"]]
    with open(out / "predictions.jsonl", "w") as fh:
        for i, r in enumerate(test):
            fh.write(json.dumps({**r, "predicted": int(y_pred[i]), "probabilities": probabilities[i].tolist()}) + "\n")
    sample = out / "predictions_sample.jsonl"
    sample.write_text("".join((out / "predictions.jsonl").read_text().splitlines(keepends=True)[:200]))
    plot_confusion_matrix(confusion(y_true, y_pred, len(classes)).tolist(), classes, out / "confusion_matrix.png")
    evaluation["artifacts"] = [(out / "confusion_matrix.png", "plots"), (sample, "evaluation")]
    return evaluation
