"""The fused C++ LSTM and GRU training kernels (models/fused.py): built, used, and equal to Keras' layers.

`make test` builds the kernels first, so a kernel that fails to compile fails here rather than
silently falling back to the TensorFlow loop.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import GRU, LSTM, fused

ATOL = 1e-5
BATCH, STEPS, FEATURES, UNITS = 5, 7, 3, 4
# Full, right-padded, left-padded, holes, empty.
MASK = np.array(
    [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1], [1, 0, 1, 0, 0, 1, 1], [0] * 7],
    dtype=bool,
)


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts calls of the fused recurrence, to prove a test ran the kernel rather than the loop."""
    calls = []
    original = fused.sequence

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(fused, "sequence", spy)
    return calls


KINDS = {"lstm": (keras.layers.LSTM, LSTM), "gru": (keras.layers.GRU, GRU)}


def _pair(kind: str = "lstm", **flags) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    reference, candidate = (cls(UNITS, **flags) for cls in KINDS[kind])
    for layer in (reference, candidate):
        layer.build((BATCH, STEPS, FEATURES))
    rng = np.random.default_rng(1)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in reference.get_weights()]
    reference.set_weights(weights)
    candidate.set_weights(weights)
    return reference, candidate


def _run(layer, x, mask=None, initial_state=None):
    """Outputs and gradients w.r.t. inputs, weights and initial state, in training mode."""
    x = tf.constant(x)
    extra = [tf.constant(s) for s in initial_state or []]
    with tf.GradientTape() as tape:
        tape.watch([x, *extra])
        kwargs = {"mask": None if mask is None else tf.constant(mask), "training": True}
        if extra:
            kwargs["initial_state"] = extra
        outputs = tf.nest.flatten(layer(x, **kwargs))
        rng = np.random.default_rng(7)
        loss = tf.add_n([tf.reduce_sum(o * rng.normal(size=o.shape).astype("float32")) for o in outputs])
    grads = tape.gradient(loss, [x, *layer.trainable_weights, *extra])
    return [o.numpy() for o in outputs], [g.numpy() for g in grads]


def _assert_same(reference, candidate, label):
    for part, (refs, values) in zip(("output", "gradient"), zip(reference, candidate, strict=True), strict=True):
        assert len(values) == len(refs), label
        for i, (a, b) in enumerate(zip(refs, values, strict=True)):
            np.testing.assert_allclose(b, a, atol=ATOL, err_msg=f"{label}: {part} {i}")


def test_the_kernels_are_built_and_loaded():
    assert fused.available(), f"{fused.library_path()} missing: run `make` (python -m rnnpipe.models.build_kernels)"


def test_missing_kernels_are_a_warning_that_says_how_to_build_them(monkeypatch, tmp_path, caplog):
    # A copied venv looks for another library name (the name hashes TensorFlow's include path).
    monkeypatch.setattr(fused, "library_path", lambda: tmp_path / "rnn_kernels-elsewhere.so")
    fused._library.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=fused.log.name):
            assert not fused.available()
    finally:
        monkeypatch.undo()
        fused._library.cache_clear()
    warning = [r for r in caplog.records if r.levelname == "WARNING" and "rnn_kernels-elsewhere.so" in r.getMessage()]
    assert warning and "rnnpipe.models.build_kernels" in warning[0].getMessage()
    assert fused.available()  # the real library again, once the cache is cleared


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(KINDS))
def test_training_outputs_and_gradients_match_keras(fused_calls, kind, go_backwards, return_sequences):
    reference, candidate = _pair(kind, go_backwards=go_backwards, return_sequences=return_sequences,
                                 return_state=True)
    x = np.random.default_rng(0).normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    for mask in (None, MASK):
        _assert_same(_run(reference, x, mask), _run(candidate, x, mask), f"mask={mask is not None}")
    assert len(fused_calls) == 2


@pytest.mark.parametrize("kind", list(KINDS))
def test_initial_state_and_zero_output_for_mask_match_keras(fused_calls, kind):
    # Bidirectional switches zero_output_for_mask on for return_sequences, as for the built-in layer.
    flags = {"return_sequences": True, "return_state": True}
    reference, candidate = (keras.layers.Bidirectional(cls(UNITS, **flags)) for cls in KINDS[kind])
    for layer in (reference, candidate):
        layer.build((BATCH, STEPS, FEATURES))
    candidate.set_weights(reference.get_weights())
    assert candidate.forward_layer.zero_output_for_mask
    rng = np.random.default_rng(3)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    initial = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(4 if kind == "lstm" else 2)]
    _assert_same(_run(reference, x, MASK, initial), _run(candidate, x, MASK, initial), "Bidirectional")
    assert len(fused_calls) == 2


@pytest.mark.parametrize("kind", list(KINDS))
def test_recurrent_dropout_matches_the_tensorflow_loop(monkeypatch, kind):
    # Same seed, same weights: the kernel and the loop draw the same masks and must agree.
    x = np.random.default_rng(4).normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    results = []
    for use_kernel in (True, False):
        layer = KINDS[kind][1](UNITS, dropout=0.3, recurrent_dropout=0.4, seed=11, return_sequences=True)
        layer.build((BATCH, STEPS, FEATURES))
        layer.set_weights(_pair(kind)[0].get_weights())
        with monkeypatch.context() as patch:
            if not use_kernel:
                patch.setattr(fused, "supports", lambda *args: False)
            results.append(_run(layer, x, MASK))
    _assert_same(results[1], results[0], "recurrent dropout")
    assert not np.allclose(results[0][0][0], _run(_pair(kind, return_sequences=True)[1], x, MASK)[0][0])


def test_inference_xla_and_exported_models_use_stock_tensorflow_ops(fused_calls, tmp_path):
    inputs = keras.Input((STEPS, FEATURES))
    hidden = GRU(UNITS, return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(LSTM(UNITS)(hidden)))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(5).normal(size=(16, STEPS, FEATURES)).astype("float32")
    model.fit(x, x[:, -1, :1], epochs=1, verbose=0)
    assert fused_calls, "fit() did not train with the kernel"
    calls = len(fused_calls)
    model.predict(x, verbose=0)
    xla_model = keras.models.clone_model(model)
    xla_model.compile(optimizer="adam", loss="mse", jit_compile=True)
    xla_model.fit(x, x[:, -1, :1], epochs=1, verbose=0)  # XLA cannot compile a custom op: the loop runs
    assert len(fused_calls) == calls
    model.export(str(tmp_path / "model"), verbose=False)
    graph = (tmp_path / "model" / "saved_model.pb").read_bytes()
    assert b"Rnnpipe" not in graph


def test_cells_the_kernels_do_not_cover_keep_the_tensorflow_loop():
    from rnnpipe.models import GRUCell, LSTMCell, SimpleRNNCell

    assert fused.supports(LSTMCell(UNITS), tf.float32) and fused.supports(GRUCell(UNITS), tf.float32)
    for cell in (GRUCell(UNITS, reset_after=False), LSTMCell(UNITS, layer_norm=True), LSTMCell(UNITS, peepholes=True),
                 LSTMCell(UNITS, activation="relu"), SimpleRNNCell(UNITS)):
        assert not fused.supports(cell, tf.float32), cell.get_config()
    assert not fused.supports(LSTMCell(UNITS), tf.float16)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sizes_that_do_not_fill_the_kernels_blocks_match_keras(fused_calls, kind):
    # 21 rows (per thread, blocks of 8 with AVX-512 or 6 with AVX2, plus a remainder) and 20 units (gate widths
    # not multiples of the 32- or 16-column panels).
    keras_cls, rnnpipe_cls = KINDS[kind]
    reference, candidate = keras_cls(20, return_sequences=True), rnnpipe_cls(20, return_sequences=True)
    for layer in (reference, candidate):
        layer.build((21, 9, 6))
    candidate.set_weights(reference.get_weights())
    rng = np.random.default_rng(8)
    x = rng.normal(size=(21, 9, 6)).astype("float32")
    mask = np.arange(9)[None, :] < rng.integers(0, 10, size=21)[:, None]
    _assert_same(_run(reference, x, mask), _run(candidate, x, mask), f"{kind} 21x20")
    assert len(fused_calls) == 1


def test_a_build_keeps_other_checkouts_builds_and_removes_only_old_ones(tmp_path):
    ours, theirs, old = (tmp_path / f"rnn_kernels-{k}.so" for k in ("ours", "theirs", "old"))
    for path in (ours, theirs, old):
        path.write_bytes(b"")
    month_ago = time.time() - 31 * 24 * 3600
    os.utime(old, (month_ago, month_ago))
    assert fused.remove_stale(ours) == [old]
    assert ours.exists() and theirs.exists() and not old.exists()
