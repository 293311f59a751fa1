"""Temperature scaling and the expected calibration error (models/calibration.py) on data whose true
temperature is known."""

from __future__ import annotations

import numpy as np
import pytest

from rnnpipe.models.calibration import (
    calibration_bins,
    ece_from_bins,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    scale,
    scale_tensor,
    softmax,
)


def _data(true_temperature: float, n: int = 4000, classes: int = 3, seed: int = 0):
    """Model probabilities softmax(z) whose labels follow softmax(z / true_temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, classes))
    cumulative = softmax(logits / true_temperature).cumsum(axis=1)
    labels = (rng.random((n, 1)) > cumulative[:, :-1]).sum(axis=1)  # one draw per row from its distribution
    return softmax(logits), labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_is_the_true_one_and_calibrates(true_temperature: float) -> None:
    probabilities, labels = _data(true_temperature)
    t = fit_temperature(probabilities, labels)
    assert t == pytest.approx(true_temperature, rel=0.15)
    calibrated = scale(probabilities, t)
    assert expected_calibration_error(calibrated, labels) < 0.03
    assert negative_log_likelihood(calibrated, labels) <= negative_log_likelihood(probabilities, labels) + 1e-9
    if true_temperature != 1.0:  # mis-calibrated before
        assert expected_calibration_error(probabilities, labels) > 0.05
    assert (calibrated.argmax(-1) == probabilities.argmax(-1)).all()  # no prediction changes


def test_streamed_bins_add_up_to_the_whole() -> None:
    probabilities, labels = _data(2.0, n=1000)
    parts = [calibration_bins(probabilities[i:i + 128], labels[i:i + 128]) for i in range(0, 1000, 128)]
    summed = [sum(p[k] for p in parts) for k in range(3)]
    assert ece_from_bins(*summed) == pytest.approx(expected_calibration_error(probabilities, labels))
    assert np.isnan(ece_from_bins(np.zeros(15), np.zeros(15), np.zeros(15)))


def test_the_serving_graph_scales_as_numpy_does() -> None:
    probabilities, _ = _data(2.0, n=50)
    np.testing.assert_allclose(scale_tensor(probabilities.astype("float32"), 1.7).numpy(),
                               scale(probabilities, 1.7), atol=1e-5)


@pytest.mark.parametrize("probabilities, labels, message", [
    (np.ones((3, 2)) / 2, np.array([0, 1]), r"probabilities of shape \(3, 2\), 2 labels"),
    (np.ones((0, 2)), np.array([], int), "n >= 1"),
    (np.ones((2, 2)) / 2, np.array([0, 2]), r"class indices in \[0, 2\). Received: 0 to 2"),
])
def test_bad_inputs_are_named(probabilities, labels, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_temperature(probabilities, labels)
