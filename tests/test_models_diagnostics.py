"""GradientDiagnostics and make_optimizer: vanishing/exploding detection on real training runs."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import GRU, LSTM, GradientDiagnostics, SimpleRNN, make_optimizer

T, FEATURES, CLASSES, UNITS = 100, 8, 4, 32
THRESHOLD = 1e-3


def recall_first_token(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The class is written (one-hot) at t=0, then T-1 steps of noise: only a long memory solves it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    x = rng.normal(size=(n, T, FEATURES)).astype("float32")
    x[:, 0, :] = 0.0
    x[np.arange(n), 0, y] = 3.0
    return x, y.astype("int32")


def last_step_classifier(layer: keras.layers.Layer, steps: int = T, features: int = FEATURES) -> keras.Model:
    inputs = keras.Input((steps, features))
    hidden = layer(inputs)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(hidden[:, -1]))


def train_with_diagnostics(model: keras.Model, **kwargs) -> GradientDiagnostics:
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    diagnostics = GradientDiagnostics(2, "rnn", recall_first_token(100, 32), THRESHOLD, 1e3, **kwargs)
    x, y = recall_first_token(0, 48)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[diagnostics])
    return diagnostics


class Recorder:
    """Stands in for `mlflow`: keeps what it is given."""

    def __init__(self) -> None:
        self.metrics: list[tuple[str, float, int]] = []
        self.tags: dict[str, str] = {}
        self.artifacts: list[tuple[str, str, bytes]] = []

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.metrics.append((key, value, step))

    def set_tag(self, key: str, value: str) -> None:
        self.tags[key] = value

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        # The callback deletes its temp dir afterwards, as mlflow copies the file: so must we.
        with open(local_path, "rb") as handle:
            self.artifacts.append((local_path, artifact_path, handle.read()))


def test_simple_rnn_is_flagged_vanishing_and_lstm_is_not(caplog):
    keras.utils.set_random_seed(0)
    simple = train_with_diagnostics(last_step_classifier(SimpleRNN(UNITS, return_sequences=True, name="rnn")))

    keras.utils.set_random_seed(0)
    lstm_layer = LSTM(UNITS, return_sequences=True, name="rnn")
    lstm_model = last_step_classifier(lstm_layer)
    # A forget-gate bias of 3 (sigmoid ~ 0.95 per step) is what lets the cell state carry over 100 steps;
    # Keras' default of 1 (~0.73 per step) also vanishes here (ratio ~1e-10 at init).
    bias = lstm_layer.cell.bias.numpy()
    bias[UNITS : 2 * UNITS] = 3.0
    lstm_layer.cell.bias.assign(bias)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rnnpipe.models.diagnostics"):
        lstm = train_with_diagnostics(lstm_model)
    assert not [r for r in caplog.records if "Vanishing" in r.getMessage()]

    # Probes at step 0 (before training) and every 2 of the 6 training steps.
    for diagnostics in (simple, lstm):
        assert diagnostics.probe_steps == [0, 2, 4, 6]
        assert diagnostics.timestep_grad_norms.shape == (4, T)
        assert all(r["replay_error"] < 1e-5 for r in diagnostics.history)
    # Measured: SimpleRNN ~1e-14, LSTM ~0.15-0.35 over seeds; both sides are 100x from the threshold.
    simple_ratio = simple.history[-1]["first_last_ratio"]
    lstm_ratio = lstm.history[-1]["first_last_ratio"]
    assert simple_ratio < THRESHOLD / 100 and simple.history[-1]["vanishing"]
    assert lstm_ratio > THRESHOLD * 100 and not lstm.history[-1]["vanishing"]
    assert not any(r["exploding"] for r in simple.history + lstm.history)
    # The SimpleRNN's gradient decays monotonically back in time, by orders of magnitude.
    norms = simple.timestep_grad_norms[-1]
    assert norms[0] < norms[T // 2] < norms[-1]


def test_timestep_norms_are_total_derivatives_and_norms_match_a_direct_tape():
    keras.utils.set_random_seed(1)
    model = last_step_classifier(SimpleRNN(6, return_sequences=True, name="rnn"), steps=5, features=3)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    y = np.array([0, 1, 2, 3], "int32")
    diagnostics = GradientDiagnostics(1, "rnn", (x, y))
    diagnostics.set_model(model)
    record = diagnostics.diagnose(step=7)

    # Reference: the gradient with respect to the layer's output tensor only sees the last step directly...
    head = keras.Model(model.input, model.get_layer("rnn").output)
    with tf.GradientTape(persistent=True) as tape:
        hidden = head(x)
        tape.watch(hidden)
        loss = model.compute_loss(x=x, y=y, y_pred=model.layers[-1](hidden[:, -1]))
    direct = tape.gradient(loss, hidden).numpy()
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.allclose(direct[:, :-1], 0.0)
    # ... and at t = T the total derivative is that direct gradient; before, it flows through the recurrence.
    np.testing.assert_allclose(record["timestep_norms"][-1], np.linalg.norm(direct[:, -1]), rtol=1e-5)
    assert (record["timestep_norms"][:-1] > 0).all()
    np.testing.assert_allclose(record["global_norm"], float(tf.linalg.global_norm(grads)), rtol=1e-5)
    np.testing.assert_allclose(record["loss"], float(loss), rtol=1e-6)
    assert set(record["layer_norms"]) == {"rnn", model.layers[-1].name}
    assert record["step"] == 7


def test_masked_builtin_layers_replay_exactly():
    tokens = keras.Input((None,), dtype="int64")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    x = np.array([[1, 2, 3, 0], [3, 4, 0, 0]])
    y = np.array([0, 1], "int32")
    for layer in (keras.layers.GRU(5, return_sequences=True, go_backwards=True, name="rnn"),
                  keras.layers.LSTM(5, return_sequences=True, name="rnn")):
        pooled = keras.layers.GlobalAveragePooling1D()(layer(embedded))
        model = keras.Model(tokens, keras.layers.Dense(2)(pooled))
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        diagnostics = GradientDiagnostics(1, "rnn", (x, y), compile_probe=layer.go_backwards)  # both paths
        diagnostics.set_model(model)
        record = diagnostics.diagnose(0)
        assert record["replay_error"] < 1e-6
        # Step 3 (processing order) is padding in both rows, so nothing there reaches the loss.
        padded = 0 if layer.go_backwards else 3
        assert record["timestep_norms"][padded] == 0.0


def test_both_directions_of_a_bidirectional_stack_are_diagnosed_and_plotted(tmp_path):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, 3))
    hidden = keras.layers.Bidirectional(GRU(5, return_sequences=True, name="gru"), name="lower")(inputs)
    hidden = keras.layers.Bidirectional(LSTM(4, name="lstm"), name="upper")(hidden)  # returns its last output
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(hidden))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype("float32")
    y = np.array([0, 1, 2, 3], "int32")
    diagnostics = GradientDiagnostics(None, None, (x, y), plot_dir=str(tmp_path))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[diagnostics])

    assert diagnostics.layer_names == ["forward_gru", "backward_gru", "forward_lstm", "backward_lstm"]
    assert diagnostics.probe_steps == [0, 1, 2]  # before training, then each epoch's end
    record = diagnostics.history[-1]
    assert record["replay_error"] < 1e-5
    for name in diagnostics.layer_names:
        assert diagnostics.timestep_norms_of(name).shape == (3, 6)
        assert (record["layers"][name]["timestep_norms"] > 0).all()
    # The upper layer's last step (processing order) reaches the loss directly: its norm is that of dL/dy_T.
    upper = model.get_layer("upper")
    with tf.GradientTape() as tape:
        lower = model.get_layer("lower")(x)
        tape.watch(lower)
        last = upper.forward_layer(lower)
        tape.watch(last)
        merged = tf.concat([last, upper.backward_layer(lower)], -1)
        loss = model.compute_loss(x=x, y=y, y_pred=model.layers[-1](merged))
    np.testing.assert_allclose(record["layers"]["forward_lstm"]["timestep_norms"][-1],
                               np.linalg.norm(tape.gradient(loss, last)), rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.png", "epoch_002.png"]


def test_layers_inside_a_subclassed_model_with_initial_states_are_diagnosed():
    class EncoderDecoder(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = LSTM(6, return_state=True, name="encoder")
            self.decoder = LSTM(6, return_sequences=True, name="decoder")
            self.head = keras.layers.Dense(CLASSES)

        def call(self, inputs):
            _, h, c = self.encoder(inputs)
            return self.head(self.decoder(inputs, initial_state=[h, c]))

    keras.utils.set_random_seed(4)
    model = EncoderDecoder()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).normal(size=(2, 7, 3)).astype("float32")
    y = np.zeros((2, 7), "int32")
    model(x)
    diagnostics = GradientDiagnostics(None, None, (x, y))
    diagnostics.set_model(model)
    record = diagnostics.diagnose(0)
    assert list(record["layers"]) == ["encoder", "decoder"] and record["replay_error"] < 1e-5
    # The encoder reaches the loss only through its final states: at its last step, dL/dh_T is the gradient
    # with respect to the h it hands the decoder; earlier steps reach the loss through the recurrence.
    with tf.GradientTape() as tape:
        _, h, c = model.encoder(x)
        tape.watch(h)
        loss = model.compute_loss(x=x, y=y, y_pred=model.head(model.decoder(x, initial_state=[h, c])))
    norms = record["layers"]["encoder"]["timestep_norms"]
    np.testing.assert_allclose(norms[-1], np.linalg.norm(tape.gradient(loss, h)), rtol=1e-5)
    assert (norms[:-1] > 0).all()


def test_exploding_is_flagged_and_the_logger_gets_metrics_tags_and_a_png(caplog):
    keras.utils.set_random_seed(2)
    # A linear RNN whose recurrent matrix has all singular values 2 doubles the signal every step.
    layer = SimpleRNN(
        8, activation="linear", recurrent_initializer=keras.initializers.Orthogonal(gain=2.0),
        return_sequences=True, name="rnn",
    )
    model = last_step_classifier(layer, steps=30, features=3)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(make_optimizer("sgd", learning_rate=1.0), loss)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 30, 3)).astype("float32"), rng.integers(0, CLASSES, size=16).astype("int32")
    recorder = Recorder()
    diagnostics = GradientDiagnostics(1, "rnn", (x[:8], y[:8]), THRESHOLD, 1e3, logger=recorder)
    with caplog.at_level(logging.WARNING, logger="rnnpipe.models.diagnostics"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[diagnostics])

    first = diagnostics.history[0]
    assert first["exploding"] and first["global_norm"] > 1e6
    assert any("Exploding gradients" in r.getMessage() for r in caplog.records)

    keys = {key for key, _, _ in recorder.metrics}
    assert {"gradients/global_norm", "gradients/first_last_ratio", "gradients/vanishing",
            "gradients/exploding", "gradients/layer/rnn"} <= keys
    assert sorted({step for _, _, step in recorder.metrics}) == [0, 1, 2]
    assert [v for k, v, s in recorder.metrics if k == "gradients/exploding" and s == 0] == [1.0]
    assert recorder.tags == {"gradients.layers": "rnn", "gradients.vanishing": str(
        diagnostics.history[-1]["vanishing"]).lower(), "gradients.exploding": "true"}
    (path, artifact_path, content), = recorder.artifacts  # one heatmap per epoch
    assert artifact_path == "gradient_diagnostics" and path.endswith("epoch_001.png")
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 1000


def test_non_finite_gradients_count_as_exploding():
    model = last_step_classifier(SimpleRNN(4, return_sequences=True, name="rnn"), steps=3, features=2)
    model.compile("sgd", "mse")
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    diagnostics = GradientDiagnostics(1, "rnn", (np.ones((2, 3, 2), "float32"), np.zeros((2, CLASSES), "float32")))
    diagnostics.set_model(model)
    assert diagnostics.diagnose(0)["exploding"]


def test_bad_arguments_and_unsupported_layers_raise_value_errors():
    probe = (np.zeros((2, 3, 2), "float32"), np.zeros((2, CLASSES), "float32"))
    with pytest.raises(ValueError, match=r"`every_n_steps` must be a positive integer.*Received: every_n_steps=0"):
        GradientDiagnostics(0, "rnn", probe)
    with pytest.raises(ValueError, match=r"`probe_data` must be a pair \(x, y\)\. Received: tuple of length 3"):
        GradientDiagnostics(1, "rnn", (*probe, None))
    with pytest.raises(ValueError, match=r"`vanishing_ratio_threshold` must be a finite number > 0.*=-1"):
        GradientDiagnostics(1, "rnn", probe, vanishing_ratio_threshold=-1)
    with pytest.raises(ValueError, match=r"`logger` must have methods .*Received: object without log_metric"):
        GradientDiagnostics(1, "rnn", probe, logger=object())

    model = last_step_classifier(SimpleRNN(4, return_sequences=True, name="rnn"), steps=3, features=2)
    model.compile("sgd", "mse")
    for name, message in (("nope", r"must name a layer of the model, one of \["),
                          (model.layers[-1].name, r"recurrent layer with a `cell`\. Received: Dense")):
        diagnostics = GradientDiagnostics(1, name, probe)
        diagnostics.set_model(model)
        with pytest.raises(ValueError, match=message):
            diagnostics.diagnose(0)
    inputs = keras.Input((3, 2))
    diagnostics = GradientDiagnostics(None, None, probe)
    diagnostics.set_model(keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.Flatten()(inputs))))
    with pytest.raises(ValueError, match=r"at least one recurrent layer"):
        diagnostics.diagnose(0)


def test_get_config_covers_every_constructor_argument():
    probe = (np.zeros((2, 3, 2), "float32"), np.zeros((2, 1), "float32"))
    recorder = Recorder()
    diagnostics = GradientDiagnostics(3, "rnn", probe, 0.5, 7.0, logger=recorder)
    config = diagnostics.get_config()
    assert config == {"every_n_steps": 3, "layer_name": "rnn", "probe_data": probe,
                      "vanishing_ratio_threshold": 0.5, "exploding_norm_threshold": 7.0, "logger": recorder,
                      "plot_dir": None, "compile_probe": True}
    assert GradientDiagnostics.from_config(config).get_config() == config


def test_make_optimizer_sets_one_clipping_mode():
    optimizer = make_optimizer(**{"name": "Adam", "learning_rate": 0.01, "global_clipnorm": 1.0})
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.global_clipnorm == 1.0 and optimizer.clipnorm is None and optimizer.clipvalue is None
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert make_optimizer("sgd", clipvalue=0.5, momentum=0.9).clipvalue == 0.5
    assert make_optimizer("rmsprop", clipnorm=2.0).clipnorm == 2.0
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert make_optimizer("sgd", learning_rate=schedule).learning_rate is not None

    with pytest.raises(ValueError, match=r"at most one of clipnorm, clipvalue, global_clipnorm to be set\. "
                                         r"Received: clipnorm=1\.0, global_clipnorm=2\.0"):
        make_optimizer(clipnorm=1.0, global_clipnorm=2.0)
    with pytest.raises(ValueError, match=r"`name` must be one of 'adam', .*Received: name='adamm'"):
        make_optimizer("adamm")
    with pytest.raises(ValueError, match=r"`clipnorm` must be a finite number > 0\. Received: clipnorm=0"):
        make_optimizer(clipnorm=0)
    with pytest.raises(ValueError, match=r"`learning_rate` must be a finite number > 0\. Received: learning_rate=-1"):
        make_optimizer(learning_rate=-1)


def test_clipping_from_make_optimizer_bounds_the_update():
    variable = keras.Variable(np.zeros(3, "float32"))
    optimizer = make_optimizer("sgd", learning_rate=1.0, global_clipnorm=1.0)
    optimizer.apply([tf.constant([300.0, 400.0, 0.0])], [variable])
    np.testing.assert_allclose(variable.numpy(), [-0.6, -0.8, 0.0], rtol=1e-6)
