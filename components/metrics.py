"""Classification metrics and the majority-class baseline, in plain numpy."""

from __future__ import annotations

import numpy as np


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
