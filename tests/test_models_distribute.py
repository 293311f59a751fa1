"""rnnpipe's fast layers under tf.distribute: a MirroredStrategy over two CPU replicas trains to the
same weights as one device (gradients are all-reduced, the loss scaled by the global batch)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Logical devices must be configured before TensorFlow initializes them: a fresh process.
_SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from rnnpipe.models import GRU, LSTM, SimpleRNN

rng = np.random.default_rng(0)
x = rng.normal(size=(32, 12, 5)).astype("float32")
x[::3, 8:] = 0.0  # right padding on some sequences, masked below
y = rng.normal(size=(32, 1)).astype("float32")


def train(layer_cls, strategy):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((12, 5))
        masked = keras.layers.Masking(0.0)(inputs)
        h = keras.layers.Bidirectional(layer_cls(8, return_sequences=True))(masked)
        h = layer_cls(6)(h)
        model = keras.Model(inputs, keras.layers.Dense(1)(h))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model.get_weights(), history.history["loss"], strategy.num_replicas_in_sync


report = {}
# One strategy for all three: strategies created side by side in a process reuse collective keys.
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
for cls in (SimpleRNN, LSTM, GRU):
    one, loss_one, _ = train(cls, tf.distribute.get_strategy())
    two, loss_two, replicas = train(cls, mirrored)
    report[cls.__name__] = {"replicas": replicas, "loss": [loss_one, loss_two],
                            "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
                            "moved": max(float(np.abs(a).max()) for a in one)}
print(json.dumps(report))
"""


@pytest.mark.slow  # about 20 s in a fresh process: over the fast suite's budget
def test_mirrored_training_over_two_replicas_matches_one_device() -> None:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, r in report.items():
        assert r["replicas"] == 2, name
        assert r["max_weight_diff"] < 1e-4, (name, r)
        assert abs(r["loss"][0][-1] - r["loss"][1][-1]) < 1e-4 and r["loss"][0][-1] < r["loss"][0][0], (name, r)


def test_tpu_strategy_without_a_tpu_is_one_line_naming_the_resolver() -> None:
    from rnnpipe.components.distribute import make_strategy
    from rnnpipe.errors import RnnpipeError

    with pytest.raises(RnnpipeError, match=r"^distribution.strategy: tpu, but TPUClusterResolver found no TPU") as e:
        make_strategy("tpu")
    assert "\n" not in str(e.value)
