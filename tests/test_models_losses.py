"""Label smoothing for integer labels (models.losses) and trainer.label_smoothing."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from rnnpipe.cli import main
from rnnpipe.models import CTCLoss, SparseCategoricalCrossentropyWithSmoothing, with_label_smoothing

FORECASTING_SAMPLE = Path(__file__).resolve().parent / "data" / "forecasting_co2_sample.csv"


def _batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 6, 7)).astype("float32")
    labels = rng.integers(1, 7, size=(3, 6))
    labels[0, 4:] = labels[2, 2:] = 0  # padding
    return labels, logits


def _dense_reference(labels: np.ndarray, logits: np.ndarray, smoothing: float) -> float:
    """The cross-entropy against (1 - s) * one_hot + s / classes, averaged over the non-padding positions."""
    classes = logits.shape[-1]
    target = np.eye(classes)[labels] * (1 - smoothing) + smoothing / classes
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_position = -(target * log_probs).sum(-1)
    kept = labels != 0
    return float(per_position[kept].sum() / kept.sum())


def test_without_smoothing_it_is_keras_sparse_categorical_crossentropy() -> None:
    labels, logits = _batch()
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(labels, logits)
    ours = SparseCategoricalCrossentropyWithSmoothing(0.0, from_logits=True, ignore_class=0)(labels, logits)
    assert float(ours) == pytest.approx(float(keras_loss), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_it_is_the_cross_entropy_with_the_smoothed_target_over_non_padding_positions(smoothing: float) -> None:
    labels, logits = _batch(1)
    expected = _dense_reference(labels, logits, smoothing)
    from_logits = SparseCategoricalCrossentropyWithSmoothing(smoothing, from_logits=True, ignore_class=0)
    assert float(from_logits(labels, logits)) == pytest.approx(expected, rel=1e-5)
    probabilities = keras.ops.softmax(logits).numpy()
    from_probabilities = SparseCategoricalCrossentropyWithSmoothing(smoothing, ignore_class=0)
    assert float(from_probabilities(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    # Padding positions count for nothing: changing their logits changes nothing.
    changed = logits.copy()
    changed[labels == 0] = 50.0
    assert float(from_logits(labels, changed)) == pytest.approx(expected, rel=1e-5)


def test_a_smoothed_classifier_stays_less_confident_on_separable_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def confidence(smoothing: float) -> float:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.Adam(0.1),
                      loss=SparseCategoricalCrossentropyWithSmoothing(smoothing, from_logits=True))
        model.fit(x, y, epochs=40, batch_size=64, verbose=0)
        probabilities = keras.ops.softmax(model.predict(x, verbose=0)).numpy()
        assert (probabilities.argmax(-1) == y).mean() > 0.95  # both learn the task
        return float(np.median(probabilities.max(-1)))

    # Smoothing 0.2 over two classes makes 0.9 the best probability; without it nothing stops at 1.
    assert confidence(0.2) < 0.93 < confidence(0.0)


def test_with_label_smoothing_keeps_the_losses_arguments() -> None:
    sparse = with_label_smoothing(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0), 0.1)
    assert isinstance(sparse, SparseCategoricalCrossentropyWithSmoothing)
    assert (sparse.label_smoothing, sparse.from_logits, sparse.ignore_class) == (0.1, True, 0)
    named = with_label_smoothing("sparse_categorical_crossentropy", 0.2)
    assert (named.label_smoothing, named.from_logits, named.ignore_class) == (0.2, False, None)
    binary = with_label_smoothing(keras.losses.BinaryCrossentropy(from_logits=True), 0.1)
    assert binary.get_config()["label_smoothing"] == 0.1 and binary.get_config()["from_logits"]
    plain = keras.losses.SparseCategoricalCrossentropy()
    assert with_label_smoothing(plain, 0.0) is plain


def test_the_loss_round_trips_through_keras_serialization() -> None:
    loss = SparseCategoricalCrossentropyWithSmoothing(0.2, from_logits=True, ignore_class=0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is SparseCategoricalCrossentropyWithSmoothing
    assert (restored.label_smoothing, restored.from_logits, restored.ignore_class) == (0.2, True, 0)


@pytest.mark.parametrize(("loss", "message"), [
    ("mse", r"Label smoothing needs a cross-entropy loss .* Received: loss='mse'"),
    (CTCLoss(), r"Label smoothing needs a cross-entropy loss .* Received: loss='ctc_loss'"),
])
def test_a_loss_that_is_not_a_cross_entropy_is_refused(loss: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_label_smoothing(loss, 0.1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"label_smoothing": 1.0}, r"`label_smoothing` must be a float in \[0, 1\). Received: label_smoothing=1.0"),
    ({"label_smoothing": -0.1}, r"Received: label_smoothing=-0.1"),
    ({"from_logits": "yes"}, r"`from_logits` must be a bool"),
    ({"ignore_class": 0.5}, r"`ignore_class` must be an int or None. Received: ignore_class=0.5"),
])
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SparseCategoricalCrossentropyWithSmoothing(**kwargs)


def test_trainer_label_smoothing_on_a_model_without_cross_entropy_is_a_config_error() -> None:
    from rnnpipe.components.training import training_loss
    from rnnpipe.errors import ConfigError
    from rnnpipe.pipelines.handwriting.model import TASK as HANDWRITING
    from rnnpipe.pipelines.translation.model import TASK as TRANSLATION

    smoothed = training_loss(TRANSLATION, 0.1)
    assert (smoothed.label_smoothing, smoothed.from_logits, smoothed.ignore_class) == (0.1, True, 0)
    assert type(training_loss(HANDWRITING, 0.0)) is type(HANDWRITING.loss)
    with pytest.raises(ConfigError, match=r"trainer.label_smoothing=0.1: this application's model does not train "
                                          r"with a cross-entropy .*ctc_loss.*; set trainer.label_smoothing to 0"):
        training_loss(HANDWRITING, 0.1)


def test_the_key_is_only_where_the_model_trains_with_a_cross_entropy(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--set", f"data.path={FORECASTING_SAMPLE}", "--set", "trainer.label_smoothing=0.1"]
    assert main(["run", "forecasting", *args]) != 0
    assert "unknown config key 'trainer.label_smoothing'" in capsys.readouterr().err
    assert not (tmp_path / "pipeline_root").exists()
