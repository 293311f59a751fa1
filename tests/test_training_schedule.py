"""trainer.lr_schedule: the learning rate by epoch, as Keras applies it during fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnnpipe.components.training import lr_schedule_callbacks


def fit_rates(schedule: str, epochs: int) -> list[float]:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    rates: list[float] = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(float(model.optimizer.learning_rate)))
    model.fit(x, y, epochs=epochs, verbose=0,
              callbacks=[*lr_schedule_callbacks(schedule, 0.01, epochs, "loss"), record])
    return rates


def test_cosine_starts_at_the_rate_and_decays_to_a_twentieth() -> None:
    rates = fit_rates("cosine", 6)
    assert rates[0] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert 0.0005 < rates[-1] < 0.002  # the last epoch still learns: the floor is 5 %


def test_constant_keeps_the_rate() -> None:
    assert fit_rates("constant", 3) == pytest.approx([0.01] * 3)


def test_plateau_halves_the_rate_when_the_monitored_metric_stalls() -> None:
    [callback] = lr_schedule_callbacks("plateau", 0.01, 5, "val_loss")
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.factor, callback.patience, callback.monitor) == (0.5, 1, "val_loss")
