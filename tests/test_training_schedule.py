"""trainer.lr_schedule: the learning rate by epoch, as Keras applies it during fit; trainer.optimizer and its
clipping keys; trainer.max_minutes."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from rnnpipe.components.trainer import OPTIMIZER_NAMES, Trainer, check_weight_decay_exclude, optimizer
from rnnpipe.components.training import TimeBudget, lr_schedule_callbacks, weight_averaging_callbacks
from rnnpipe.errors import ConfigError
from rnnpipe.models.optimizers import OPTIMIZERS, warm_up_moving_average
from rnnpipe.processes import free_ports


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


def test_trainer_builds_the_named_optimizer_with_the_clipping_asked_for() -> None:
    assert set(OPTIMIZER_NAMES) == set(OPTIMIZERS)  # written out in the Trainer so that building imports no Keras
    defaults = {key: p.default for key, p in Trainer.PARAMETERS.items() if key in
                ("optimizer", "global_clipnorm", "clipnorm", "clipvalue")}
    adam = optimizer(defaults, 0.01)
    assert type(adam).__name__ == "Adam" and adam.global_clipnorm == 1.0 and adam.clipnorm is None
    sgd = optimizer({**defaults, "optimizer": "sgd", "global_clipnorm": 0.0, "clipvalue": 0.5}, 0.1)
    assert type(sgd).__name__ == "SGD" and sgd.clipvalue == 0.5 and sgd.global_clipnorm is None
    assert float(sgd.learning_rate) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match=r"at most one of .* Received: clipnorm=2\.0, global_clipnorm=1\.0.*"
                                          r"trainer\.global_clipnorm, trainer\.clipnorm, trainer\.clipvalue"):
        optimizer({**defaults, "clipnorm": 2.0}, 0.01)


def test_weight_decay_shrinks_the_weights_apart_from_the_gradient() -> None:
    params = {key: p.default for key, p in Trainer.PARAMETERS.items()}
    assert params["weight_decay"] is None and optimizer(params, 0.1).weight_decay is None  # Adam's own: none
    assert optimizer({**params, "optimizer": "adamw"}, 0.1).weight_decay == pytest.approx(0.004)
    sgd = optimizer({**params, "optimizer": "sgd", "weight_decay": 0.5}, 0.1)
    weight = keras.Variable(np.full((3,), 2.0, "float32"))
    sgd.apply_gradients([(np.zeros((3,), "float32"), weight)])  # nothing to learn: only the decay moves it
    assert np.allclose(keras.ops.convert_to_numpy(weight), 2.0 * (1 - 0.1 * 0.5))
    with pytest.raises(ConfigError, match="weight_decay"):
        Trainer(task="m:T", weight_decay=-0.1)


def test_weight_decay_spares_the_variables_whose_names_match_weight_decay_exclude() -> None:
    params = {key: p.default for key, p in Trainer.PARAMETERS.items()}
    sgd = optimizer({**params, "optimizer": "sgd", "weight_decay": 0.5, "weight_decay_exclude": ["bias", "^emb"]}, 0.1)
    weights = {name: keras.Variable(np.full((3,), 2.0, "float32"), name=name)
               for name in ("kernel", "recurrent_kernel", "bias", "embeddings")}
    sgd.apply_gradients([(np.zeros((3,), "float32"), w) for w in weights.values()])
    moved = {name: float(keras.ops.convert_to_numpy(w)[0]) for name, w in weights.items()}
    assert moved == pytest.approx({"kernel": 1.9, "recurrent_kernel": 1.9, "bias": 2.0, "embeddings": 2.0})
    with pytest.raises(ConfigError, match=r"Trainer: parameter 'weight_decay_exclude'.*'\[bias'"):
        check_weight_decay_exclude(["[bias"])  # Trainer.check and Tuner.check, before the run's first step
    with pytest.raises(ConfigError, match="weight_decay_exclude"):
        Trainer(task="m:T", weight_decay_exclude="bias")  # one string, not a list


def test_weight_averaging_validates_and_keeps_the_moving_average_of_the_weights() -> None:
    # SGD at a high rate on noisy targets: the weights jump around the solution, their average does not.
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32") + np.random.default_rng(1).normal(size=(64, 1)) * 0.5
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    params = {key: p.default for key, p in Trainer.PARAMETERS.items()}
    model.compile(optimizer=optimizer({**params, "optimizer": "sgd", "ema_momentum": 0.9}, 0.2), loss="mse")
    steps: list[np.ndarray] = []  # the trained kernel after every step
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: steps.append(model.get_weights()[0]))
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, validation_data=(x, y),
                        callbacks=[*weight_averaging_callbacks(0.9), stopping, record])
    average = steps[0]
    for t, kernel in enumerate(steps[1:], start=1):
        momentum = min(0.9, (1 + t) / (10 + t))  # warmed up: 0.18, 0.25, ... (0.9 only from step 80)
        average = momentum * average + (1 - momentum) * kernel
    assert np.allclose(model.get_weights()[0], average, atol=1e-5)  # the model keeps the average...
    assert not np.allclose(steps[-1], average, atol=1e-3)  # ... not the last step's weights
    # Validation scored the average: the exported model's loss is the last epoch's val_loss.
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-4)
    assert weight_averaging_callbacks(None) == []
    with pytest.raises(ConfigError, match="ema_momentum"):
        Trainer(task="m:T", ema_momentum=1.0)
    with pytest.raises(ValueError, match="use_ema=True. Received: SGD with use_ema=False"):
        warm_up_moving_average(keras.optimizers.SGD())


def test_time_budget_stops_before_an_epoch_that_would_overrun() -> None:
    now = [0.0]
    budget = TimeBudget(max_minutes=1.0, clock=lambda: now[0])  # 60 s; every epoch "takes" 25 s

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now[0] += 25.0 if epoch else 20.0  # the first epoch is quicker: the longest one counts

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[Tick(), budget])
    # After epoch 2 (45 s), a third of 25 s would end at 70 s > 60 s: two epochs, not ten.
    assert len(history.history["loss"]) == 2 and budget.stopped_after == 2
    roomy = TimeBudget(max_minutes=10.0, clock=lambda: now[0])
    assert len(model.fit(x, y, epochs=3, verbose=0, callbacks=[Tick(), roomy]).history["loss"]) == 3
    assert roomy.stopped_after is None


def test_cosine_under_a_time_budget_decays_over_the_epochs_that_fit() -> None:
    now = [0.0]

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now[0] += 10.0

    budget = TimeBudget(max_minutes=1.0, clock=lambda: now[0])  # 60 s at 10 s an epoch: 6 of the 20 fit
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rates: list[float] = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(float(model.optimizer.learning_rate)))
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, epochs=20, verbose=0,
              callbacks=[*lr_schedule_callbacks("cosine", 0.01, 20, "loss", budget), Tick(), budget, record])
    assert budget.stopped_after == 6 and budget.last_epoch() == 5  # predicted after the first epoch, and right
    assert rates[0] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    # The sixth epoch of a 6-epoch cosine, as fit_rates("cosine", 6) ends; the 20-epoch one would be at 0.0086.
    assert rates[-1] == pytest.approx(fit_rates("cosine", 6)[-1])


AGREE = """
import json, os, sys
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": sys.argv[2:]},
                                      "task": {"type": "worker", "index": int(sys.argv[1])}})
import tensorflow as tf
from rnnpipe.components.training import agree_across_workers
agree = agree_across_workers(tf.distribute.MultiWorkerMirroredStrategy())
index = int(sys.argv[1])
print(json.dumps([agree(float(index)), agree(3.0 + 2 * index), agree(float(index == 1)) > 0]))
"""


@pytest.mark.slow  # two fresh TensorFlow processes
def test_two_workers_agree_on_the_mean_of_their_values() -> None:
    # The time budget's durations and stop votes: every worker must get the same number back, or one stops
    # (or decays its learning rate) while the other goes on.
    cluster = [f"localhost:{port}" for port in free_ports(2)]  # as `--workers` picks them: two distinct ports
    workers = [subprocess.Popen([sys.executable, "-c", AGREE, str(i), *cluster], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == ["[0.5, 4.0, true]"] * 2
