"""Calibrated class probabilities: temperature scaling (Guo et al., 2017) and the expected calibration error.

A classifier trained with cross-entropy is often over- or under-confident: among the sentences it calls
positive with probability 0.9, far fewer or more than 90 % are. Dividing the logits by one temperature `T`,
fitted on held-out data by minimizing the negative log-likelihood, fixes most of it without changing any
prediction (the arg max stays). Softmax probabilities are logits up to a constant, so
`softmax(log(p) / T)` applies it to a model's probabilities.

>>> import numpy as np
>>> logits = np.random.default_rng(0).normal(size=(2000, 2)) * 4
>>> labels = (np.random.default_rng(1).random(2000) < softmax(logits / 4)[:, 1]).astype(int)
>>> overconfident = softmax(logits)
>>> t = fit_temperature(overconfident, labels)
>>> bool(3 < t < 5.5)
True
>>> before = expected_calibration_error(overconfident, labels)
>>> bool(expected_calibration_error(scale(overconfident, t), labels) < before)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPSILON = 1e-12
BOUNDS = (0.05, 20.0)  # temperatures searched


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """`softmax(log(p) / T)` over the last axis (NumPy)."""
    return softmax(np.log(np.maximum(probabilities, EPSILON)) / temperature)


def scale_tensor(probabilities: Any, temperature: Any) -> Any:
    """`softmax(log(p) / T)` over the last axis, in TensorFlow: what the serving graph runs."""
    import tensorflow as tf

    logits = tf.math.log(tf.maximum(probabilities, EPSILON))
    return tf.nn.softmax(logits / tf.cast(temperature, logits.dtype), axis=-1)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(picked, EPSILON))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in `BOUNDS` that minimizes the NLL of `scale(probabilities, T)` on `labels`
    (`[n, classes]` probabilities, `[n]` integer labels). Raises ValueError for empty or mismatched inputs."""
    from scipy.optimize import minimize_scalar

    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or not len(labels):
        raise ValueError("fit_temperature needs [n, classes] probabilities and n labels, n >= 1. Received: "
                         f"probabilities of shape {probabilities.shape}, {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(f"labels must be class indices in [0, {probabilities.shape[1]}). "
                         f"Received: {labels.min()} to {labels.max()}")
    result = minimize_scalar(lambda log_t: negative_log_likelihood(scale(probabilities, np.exp(log_t)), labels),
                             bounds=np.log(BOUNDS), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence (the top probability) and accuracy, averaged over `bins` equal-width
    confidence bins weighted by their share of the examples."""
    counts, confidence, correct = calibration_bins(probabilities, labels, bins)
    return ece_from_bins(counts, confidence, correct)


def calibration_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: the number of examples, the sum of their confidences, the number correct; sums
    over batches add up, so an evaluation can stream."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    top = probabilities.max(axis=-1)
    which = np.minimum((top * bins).astype(np.int64), bins - 1)
    right = (probabilities.argmax(axis=-1) == labels).astype(np.float64)
    return (np.bincount(which, minlength=bins).astype(np.float64), np.bincount(which, top, minlength=bins),
            np.bincount(which, right, minlength=bins))


def ece_from_bins(counts: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> float:
    total = counts.sum()
    if not total:
        return float("nan")
    return float(np.sum(np.abs(confidence - correct)) / total)
