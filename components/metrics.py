"""Classification metrics, the majority-class baseline, and the Evaluator's default metrics function."""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .plots import plot_confusion_matrix

CALIBRATION_BINS = 15  # equal-width bins of the top probability, for the expected calibration error


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def confusion_metrics(m: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class F1 from a confusion matrix (rows: truth); an empty one gives NaNs."""
    if m.sum() == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "count": 0}
    tp = np.diag(m).astype(float)
    precision = np.divide(tp, m.sum(0), out=np.zeros_like(tp), where=m.sum(0) > 0)
    recall = np.divide(tp, m.sum(1), out=np.zeros_like(tp), where=m.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    present = m.sum(1) > 0
    out = {"accuracy": float(tp.sum() / m.sum()), "macro_f1": float(f1[present].mean()), "count": int(m.sum())}
    out.update({f"f1_class_{i}": float(f1[i]) for i in range(len(m))})
    return out


class PredictionsWriter:
    """Writes an evaluation's per-example predictions as they are scored: ``predictions.jsonl`` with every row and
    ``predictions_sample.jsonl`` with the first ``sample_size`` (small enough for MLflow's artifact view).

        with PredictionsWriter(out_dir) as writer:
            for batch, outputs in ev.batches():
                writer.write({**record, "predicted": ...} for record in batch)
        artifacts.append((writer.sample_path, "evaluation"))
    """

    def __init__(self, out_dir: Path, sample_size: int = 200) -> None:
        self.path, self.sample_path = Path(out_dir) / "predictions.jsonl", Path(out_dir) / "predictions_sample.jsonl"
        self.sample_size, self.rows = sample_size, 0

    def __enter__(self) -> PredictionsWriter:
        self._all = open(self.path, "w", encoding="utf-8")
        self._sample = open(self.sample_path, "w", encoding="utf-8")
        return self

    def write(self, rows: Iterable[dict]) -> None:
        for row in rows:
            line = json.dumps(row, ensure_ascii=False) + "\n"
            self._all.write(line)
            if self.rows < self.sample_size:
                self._sample.write(line)
            self.rows += 1

    def __exit__(self, *exc: object) -> None:
        self._all.close()
        self._sample.close()


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
    "slice_keys": [], "length_feature": None, "length_edges": [8, 16, 32], "peers": [], "text_key": None,
}


def slicers(cfg: dict) -> dict[str, Callable[[dict], str]]:
    """Slice name -> record -> value: one per ``slice_keys`` entry, and ``length`` when ``length_feature`` is set
    (the whitespace-token count bucket of that feature, by ``length_edges``)."""
    out = {key: (lambda r, key=key: str(r.get(key))) for key in cfg.get("slice_keys") or []}
    if cfg.get("length_feature"):
        out["length"] = lambda r: length_bucket(r.get(cfg["length_feature"], ""), cfg["length_edges"])
    return out


def evaluate_classification(ev: Any) -> dict:
    """Accuracy and F1 overall, per value of ``slice_keys`` and per length bucket of ``length_feature``,
    beside the majority class of the train split; a confusion matrix and the predictions as files. Streams the
    split (one confusion matrix per slice), so memory does not grow with it.

    ``peers`` (names of components.peers.TEXT_CLASSIFIERS, fit on the train split's ``text_key``) are scored
    beside the model on the same examples, overall and per slice, as ``peer/<name>``.

    ``ev`` is the Evaluator's EvalContext; ``ev.config`` keys: see CLASSIFICATION_DEFAULTS
    (``class_names`` is required)."""
    from rnnpipe.models.calibration import calibration_bins, ece_from_bins

    from .peers import TEXT_CLASSIFIERS, check_peers

    cfg = {**CLASSIFICATION_DEFAULTS, **ev.config}
    classes, label_key = cfg["class_names"], cfg["label_key"]
    if not classes:
        raise ValueError("evaluator.metrics.class_names is required for classification metrics")
    peers = check_peers(cfg["peers"] or [], TEXT_CLASSIFIERS) if ev.out_dir is not None else []
    if peers and not cfg["text_key"]:
        raise ValueError("evaluator.metrics.peers needs evaluator.metrics.text_key, the text feature they read")
    scored: list[tuple[np.ndarray, dict[str, np.ndarray], list[str]]] = []  # what the peers are scored on
    k, out = len(classes), ev.out_dir
    majority = None
    if out is not None:  # scoring the champion: the overall model metrics are all that is read
        counts = Counter(int(r[label_key]) for r in ev.iter_records("train"))
        majority = min(counts, key=lambda c: (-counts[c], c))  # ties: the smallest label
    by_slice = slicers(cfg)
    reliability = [np.zeros(CALIBRATION_BINS) for _ in range(3)]  # per confidence bin: count, confidence, correct
    model: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((k, k), np.int64))
    baseline: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((k, k), np.int64))
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(PredictionsWriter(out)) if out is not None else None
        for batch, outputs in ev.batches():
            y_true = np.array([r[label_key] for r in batch], dtype=np.int64)
            y_pred = outputs[cfg["prediction_key"]].astype(np.int64)
            groups = {"overall": np.arange(len(batch))}
            for name, slicer in by_slice.items():
                values = np.array([slicer(r) for r in batch], dtype=object)
                groups.update({f"{name}:{v}": np.flatnonzero(values == v) for v in set(values)})
            for group, idx in groups.items():
                np.add.at(model[group], (y_true[idx], y_pred[idx]), 1)
                if majority is not None:
                    baseline[group][:, majority] += np.bincount(y_true[idx], minlength=k)
            if peers:
                scored.append((y_true, groups, [str(r[cfg["text_key"]]) for r in batch]))
            probabilities = outputs[cfg["probability_key"]]
            for total, part in zip(reliability, calibration_bins(probabilities, y_true, CALIBRATION_BINS),
                                   strict=True):
                total += part
            if writer is not None:
                writer.write({**r, "predicted": int(y_pred[i]), "probabilities": probabilities[i].tolist()}
                             for i, r in enumerate(batch))
    # The calibration of the probabilities clients get: an average over a document's sentences means something
    # only if 0.8 is right 80 % of the time (trainer.calibration fits a temperature on the eval split).
    ece = {"ece": ece_from_bins(*reliability)}
    if out is None:
        return {"overall": {"model": {**confusion_metrics(model["overall"]), **ece}}}

    peer_matrices = _score_peers(peers, scored, ev, cfg, k)

    def both(group: str) -> dict:
        return {"model": {**confusion_metrics(model[group]), **(ece if group == "overall" else {})},
                "baseline": confusion_metrics(baseline[group]),
                **{f"peer/{name}": confusion_metrics(m[group]) for name, m in peer_matrices.items()}}

    order = {name: i for i, name in enumerate(by_slice)}  # slices by slicer, then by value
    sliced = sorted((g for g in model if g != "overall"), key=lambda g: (order[g.split(":", 1)[0]], g))
    evaluation = {"overall": both("overall"), "slices": {g: both(g) for g in sliced},
                  "baseline": f"majority class '{classes[majority]}'",
                  "card_metrics": ["count", "accuracy", "macro_f1", "ece"]}
    plot_confusion_matrix(model["overall"].tolist(), classes, out / "confusion_matrix.png")
    evaluation["artifacts"] = [(out / "confusion_matrix.png", "plots"), (writer.sample_path, "evaluation")]
    return evaluation


def _score_peers(peers: list[str], scored: list[tuple[np.ndarray, dict[str, np.ndarray], list[str]]], ev: Any,
                 cfg: dict, k: int) -> dict[str, dict[str, np.ndarray]]:
    """Per peer, a confusion matrix per group (overall and slices) of its predictions on the scored examples."""
    from .peers import text_classifier_predictions

    matrices: dict[str, dict[str, np.ndarray]] = {}
    if not peers:
        return matrices
    train = [(str(r[cfg["text_key"]]), int(r[cfg["label_key"]])) for r in ev.train_records()]
    texts = [text for _, _, batch_texts in scored for text in batch_texts]
    for name in peers:
        predicted, offset = text_classifier_predictions(name, train, texts, ev.log), 0
        matrices[name] = defaultdict(lambda: np.zeros((k, k), np.int64))
        for y_true, groups, batch_texts in scored:
            batch_pred = predicted[offset:offset + len(batch_texts)]
            for group, idx in groups.items():
                np.add.at(matrices[name][group], (y_true[idx], batch_pred[idx]), 1)
            offset += len(batch_texts)
    return matrices
