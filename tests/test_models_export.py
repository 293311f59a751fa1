"""Every public layer of `rnnpipe.models` survives `model.export` (SavedModel served by TensorFlow alone) and `.keras`.

Tiny models with random weights and padded (masked) inputs are exported with Keras 3's `model.export` /
`keras.export.ExportArchive` (which traces every endpoint with `autograph=False`, as a serving signature).
ONE fresh interpreter that imports only TensorFlow (no rnnpipe) loads every SavedModel and calls every
endpoint; its outputs must equal the in-memory model's (atol 1e-5). The same models go through `model.save` /
`keras.models.load_model` in this process. Exporting costs several seconds per model on 2 cores, so layers
share a model as parallel branches with one named output each, and the tests are parametrized by layer.
"""

from __future__ import annotations

import atexit
import inspect
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe import models
from rnnpipe.models import (
    GRU,
    LSTM,
    AdditiveAttention,
    GRUCell,
    LSTMCell,
    MaskedMaxPooling1D,
    MaskedMeanPooling1D,
    MultiplicativeAttention,
    Seq2Seq,
    SimpleRNN,
    SimpleRNNCell,
    build_crnn,
    build_ctc_recognizer,
    build_seq2seq,
    build_sequence_classifier,
    build_speech_recognizer,
    ctc_decode_dense,
)
from rnnpipe.models.forecaster import AutoregressiveRNN, CorrectionShare, SeasonalDifference, SeasonalNaive
from rnnpipe.models.language_model import build_language_model
from rnnpipe.models.smoothing import HoltWinters
from rnnpipe.models.theta import Theta


def flatten(prefix: str, value: Any, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Name the leaves of a nested output "<endpoint>/<key or index>/...": outputs are compared by name."""
    if isinstance(value, dict):
        for key in sorted(value):
            flatten(f"{prefix}/{key}", value[key], out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            flatten(f"{prefix}/{index}", item, out)
    else:
        out[prefix] = np.asarray(value)
    return out


# Started at collection so that its ~20 s TensorFlow import overlaps with the exports. It reads one JSON
# request: [[case, export_dir, inputs.npz, [[endpoint, [argument structures of npz keys]], ...]], ...], calls
# each endpoint and saves the named outputs next to the inputs; errors are reported per case.
_LOADER_SOURCE = (
    textwrap.dedent(
        """
        from __future__ import annotations  # flatten's annotations name Any, which is not imported there
        import json, sys, traceback
        import numpy as np
        import tensorflow as tf
        """
    )
    + inspect.getsource(flatten)  # the same naming in both processes
    + textwrap.dedent(
        """
        def rebuild(spec, arrays):
            if isinstance(spec, str):
                return tf.constant(arrays[spec])
            if isinstance(spec, dict):
                return {key: rebuild(value, arrays) for key, value in spec.items()}
            return [rebuild(value, arrays) for value in spec]

        request = sys.stdin.readline()
        if not request:
            sys.exit(0)
        errors = {}
        for case, export_dir, inputs_path, calls in json.loads(request):
            try:
                loaded = tf.saved_model.load(export_dir)
                arrays = dict(np.load(inputs_path))
                outputs = {}
                for endpoint, args in calls:
                    flatten(endpoint, getattr(loaded, endpoint)(*[rebuild(a, arrays) for a in args]), outputs)
                np.savez(inputs_path.replace("inputs.npz", "served.npz"), **outputs)
            except Exception:
                errors[case] = traceback.format_exc()[-3000:]
        rnnpipe_imported = any(m.startswith("rnnpipe") for m in sys.modules)
        print(json.dumps({"rnnpipe_imported": rnnpipe_imported, "errors": errors}))
        """
    )
)
_LOADER = subprocess.Popen(
    [sys.executable, "-c", _LOADER_SOURCE],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
)
atexit.register(lambda: _LOADER.poll() is None and _LOADER.kill())

B, T, F = 3, 6, 3
LENGTHS = np.array([6, 4, 1])


def padded_floats(seed: int, features: int = F, steps: int = T) -> np.ndarray:
    """`[B, steps, features]` normal values, zero (so masked by `Masking`) after each row's length."""
    x = np.random.default_rng(seed).normal(size=(B, steps, features)).astype("float32")
    x[np.arange(steps)[None, :] >= (LENGTHS * steps // T)[:, None]] = 0.0
    return x


def masked_input(name: str, features: int = F) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((None, features), name=name)
    return inputs, keras.layers.Masking(0.0)(inputs)


def named(outputs: dict[str, Any]) -> dict[str, Any]:
    """A flat name -> tensor dict (what a SavedModel signature can return): a list output becomes name.0, ..."""
    flat = {}
    for name, value in outputs.items():
        if isinstance(value, (list, tuple)):
            flat.update(named({f"{name}.{i}": item for i, item in enumerate(value)}))
        else:
            flat[name] = value
    return flat


def cells_model() -> keras.Model:
    inputs, x = masked_input("sequences")
    outputs = {
        "SimpleRNNCell": keras.layers.RNN(SimpleRNNCell(4), return_sequences=True)(x),
        "LSTMCell": keras.layers.RNN(LSTMCell(4, layer_norm=True, peepholes=True), return_state=True)(x),
        "GRUCell": keras.layers.RNN(GRUCell(4, reset_after=False), return_sequences=True, go_backwards=True)(x),
    }
    return keras.Model(inputs, named(outputs))


def fast_layers_model() -> keras.Model:
    inputs, x = masked_input("sequences")
    outputs = {
        "SimpleRNN": SimpleRNN(4, return_sequences=True, go_backwards=True)(x),
        "LSTM": LSTM(4, layer_norm=True, peepholes=True, return_state=True)(x),
        "GRU": GRU(4, reset_after=False)(x),
        # Bidirectional switches on zero_output_for_mask in both directions.
        "Bidirectional": keras.layers.Bidirectional(GRU(4, return_sequences=True))(x),
    }
    return keras.Model(inputs, named(outputs))


def pooling_attention_model() -> keras.Model:
    value_input, value = masked_input("value")
    query_input, query = masked_input("query")
    outputs = {
        "MaskedMeanPooling1D": MaskedMeanPooling1D()(value),
        "MaskedMaxPooling1D": MaskedMaxPooling1D()(value),
        "AdditiveAttention": AdditiveAttention(5)(query, value),
        # "dot" needs query and value of one size, hence F features on both sides.
        "MultiplicativeAttention": [
            MultiplicativeAttention(score, units=3)(query, value) for score in ("dot", "general", "concat")
        ],
    }
    return keras.Model([value_input, query_input], named(outputs))


def forecasting_model() -> keras.Model:
    inputs = keras.Input((T, 1), name="history")
    outputs = {
        "AutoregressiveRNN": AutoregressiveRNN(3, cell="lstm", units=4, num_layers=2)(inputs),
        "SeasonalNaive": SeasonalNaive(season=4, horizon=5)(inputs),
        "SeasonalDifference": SeasonalDifference(season=4)(inputs),
        "HoltWinters": HoltWinters(horizon=6, season=3)(inputs),
        "Theta": Theta(horizon=4, season=3)(inputs),
        "CorrectionShare": CorrectionShare(share=0.5)(inputs),
    }
    return keras.Model(inputs, outputs)


@dataclass
class Endpoint:
    """`fn(model, *args)` computes the endpoint; `signature` None: the `serve` endpoint of `model.export`."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    signature: list[Any] | None = None


def serve(*args: Any) -> dict[str, Endpoint]:
    return {"serve": Endpoint(lambda model, x: model(x), args)}


FRAMES_INPUT = np.random.default_rng(20).normal(size=(B, 8, 4)).astype("float32")
FRAMES = [tf.TensorSpec([None, None, 4], tf.float32)]
SOURCE = np.array([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [5, 0, 0, 0, 0]], "int32")
TARGET_IN = np.array([[1, 7, 6, 5, 4], [1, 9, 0, 0, 0], [1, 5, 3, 0, 0]], "int32")
IDS = tf.TensorSpec([None, None], tf.int32)
DECODE = [IDS, tf.TensorSpec([], tf.int32)]  # source, max_length
MAX_LENGTH = np.array(6, "int32")
LINES = np.random.default_rng(21).uniform(size=(B, 8, 12, 1)).astype("float32")
TOKENS = np.array([[3, 4, 5, 6], [7, 2, 0, 0], [9, 0, 0, 0]], "int64")
# Each token's characters, zero-padded; padded tokens are all zeros.
CHAR_LENGTHS = np.array([[5, 2, 3, 1], [4, 1, 0, 0], [2, 0, 0, 0]])
CHARS = np.where(np.arange(5) < CHAR_LENGTHS[..., None], np.random.default_rng(22).integers(1, 10, size=(B, 4, 5)), 0)

# case -> (model builder, endpoints)
CASES: dict[str, tuple[Callable[[], keras.Model], dict[str, Endpoint]]] = {
    "cells": (cells_model, serve(padded_floats(1))),
    "fast_layers": (fast_layers_model, serve(padded_floats(2))),
    "pooling_attention": (pooling_attention_model, serve([padded_floats(3), padded_floats(4, steps=4)])),
    "forecasting": (forecasting_model, serve(np.random.default_rng(5).normal(size=(B, T, 1)).astype("float32"))),
    "language_model": (
        lambda: build_language_model(11, embedding_dim=4, units=4, num_layers=2, cell="gru"),
        {
            "serve": Endpoint(
                lambda model, ids: {"logits": model(ids, mask=tf.not_equal(ids, 0))}, (SOURCE,), [IDS]
            ),
        },
    ),
    "ctc": (
        lambda: build_ctc_recognizer(4, input_shape=(None, 4), units=4, num_layers=1, bidirectional=False),
        {
            "serve": Endpoint(lambda model, x: {"probabilities": model(x)}, (FRAMES_INPUT,), FRAMES),
            "greedy": Endpoint(lambda model, x: {"greedy": ctc_decode_dense(model(x))}, (FRAMES_INPUT,), FRAMES),
            "beam": Endpoint(
                lambda model, x: {"beam": ctc_decode_dense(model(x), greedy=False, beam_width=4)},
                (FRAMES_INPUT,),
                FRAMES,
            ),
        },
    ),
    "speech": (  # FrequencyWarp and SpecAugment are in the graph: the identity at inference
        lambda: build_speech_recognizer(4, num_features=4, conv_filters=(2,), conv_strides=((2, 1),), units=4,
                                        num_layers=1, spec_augment={"time_masks": 1, "max_time_width": 2,
                                                                    "freq_masks": 1, "max_freq_width": 1},
                                        frequency_warp=0.1),
        {"serve": Endpoint(lambda model, x: {"probabilities": model(x)}, (FRAMES_INPUT,), FRAMES)},
    ),
    "crnn": (  # a padded line: FrameMask, ZeroPaddedColumns and BlankPaddedFrames act on its columns
        lambda: build_crnn(3, height=8, conv_filters=(2, 2), width_pooling=(2, 1), units=4, num_layers=1,
                           augment_shift=0.1, augment_noise=0.1),
        {"serve": Endpoint(lambda model, x: {"probabilities": model(x)},
                           ({"image": LINES, "width": np.array([12, 7, 3], "int32")},),
                           [{"image": tf.TensorSpec([None, 8, None, 1], tf.float32),
                             "width": tf.TensorSpec([None], tf.int32)}])},
    ),
    "characters": (
        lambda: build_sequence_classifier(12, 2, embedding_dim=4, units=4, pooling="max", num_chars=10, char_dim=3,
                                          char_filters=4),
        {"serve": Endpoint(lambda model, x: {"probabilities": model(x)}, ({"tokens": TOKENS, "chars": CHARS},),
                           [{"tokens": tf.TensorSpec([None, None], tf.int64),
                             "chars": tf.TensorSpec([None, None, None], tf.int64)}])},
    ),
    "seq2seq": (
        # LSTM: two states per layer through the decoding loops; bidirectional: the bridge.
        lambda: build_seq2seq(10, 11, embedding_dim=4, units=4, cell="lstm", bidirectional=True),
        {
            "serve": Endpoint(
                lambda model, inputs: {"logits": model(inputs)},
                ({"source": SOURCE, "target_in": TARGET_IN},),
                [{"source": IDS, "target_in": IDS}],
            ),
            "greedy": Endpoint(lambda model, s, n: model.greedy_decode(s, max_length=n), (SOURCE, MAX_LENGTH), DECODE),
            "beam": Endpoint(
                lambda model, s, n: model.beam_search_decode(s, beam_width=3, max_length=n),
                (SOURCE, MAX_LENGTH),
                DECODE,
            ),
        },
    ),
    "seq2seq_lexicon": (
        # GRU, one direction: the other branch of the bridge and the decoding loops' states, with the lexicon and
        # the output tied to the target embeddings (a ReversibleEmbedding and a Bias).
        lambda: build_seq2seq(10, 11, embedding_dim=4, units=4, bidirectional=False, lexical_bias=True,
                              tie_embeddings=True),
        {
            "serve": Endpoint(
                lambda model, inputs: {"logits": model(inputs)},
                ({"source": SOURCE, "target_in": TARGET_IN},),
                [{"source": IDS, "target_in": IDS}],
            ),
            "beam": Endpoint(
                lambda model, s, n: model.beam_search_decode(s, beam_width=3, max_length=n),
                (SOURCE, MAX_LENGTH),
                DECODE,
            ),
        },
    ),
}

# Parametrization by what is exported: layer (or piece) -> (case, output-name fragment).
PIECES: dict[str, tuple[str, str]] = {
    **{name: ("cells", f"/{name}") for name in ("SimpleRNNCell", "LSTMCell", "GRUCell")},
    **{name: ("fast_layers", f"/{name}") for name in ("SimpleRNN", "LSTM", "GRU", "Bidirectional")},
    **{
        name: ("pooling_attention", f"/{name}")
        for name in ("MaskedMeanPooling1D", "MaskedMaxPooling1D", "AdditiveAttention", "MultiplicativeAttention")
    },
    "AutoregressiveRNN": ("forecasting", "/AutoregressiveRNN"),
    "SeasonalNaive": ("forecasting", "/SeasonalNaive"),
    "SeasonalDifference": ("forecasting", "/SeasonalDifference"),
    "HoltWinters": ("forecasting", "/HoltWinters"),
    "Theta": ("forecasting", "/Theta"),
    "CorrectionShare": ("forecasting", "/CorrectionShare"),
    "LanguageModel": ("language_model", "serve/"),
    "ctc_recognizer": ("ctc", "serve/"),
    "ctc_decode_dense-greedy": ("ctc", "greedy/"),
    "ctc_decode_dense-beam": ("ctc", "beam/"),
    "SpecAugment": ("speech", "serve/"),
    "FrequencyWarp": ("speech", "serve/"),
    **{name: ("crnn", "serve/") for name in ("FrameMask", "ZeroPaddedColumns", "BlankPaddedFrames",
                                             "LineAugmentation")},
    "CharacterCNN": ("characters", "serve/"),
    "Seq2Seq": ("seq2seq", "serve/"),
    "Seq2Seq.greedy_decode": ("seq2seq", "greedy/"),
    "Seq2Seq.beam_search_decode": ("seq2seq", "beam/"),
    "LexicalBias": ("seq2seq_lexicon", "beam/"),
    "Bias": ("seq2seq_lexicon", "beam/"),
}


def randomize(model: keras.Model, seed: int) -> keras.Model:
    # Non-default weights (forget-gate biases, layer-norm gains...) so every weight matters. Weights training
    # does not change are tables and statistics, non-negative by construction (LexicalBias' lexicon).
    rng = np.random.default_rng(seed)
    values = [rng.normal(scale=0.5, size=w.shape) for w in model.weights]
    model.set_weights([(v if w.trainable else np.abs(v)).astype(w.dtype) for v, w in zip(values, model.weights,
                                                                                          strict=True)])
    return model


def run_endpoints(model: keras.Model, endpoints: dict[str, Endpoint]) -> dict[str, np.ndarray]:
    outputs: dict[str, np.ndarray] = {}
    for name, endpoint in endpoints.items():
        flatten(name, endpoint.fn(model, *endpoint.args), outputs)
    return outputs


def _bind(fn: Callable[..., Any], model: keras.Model) -> Callable[..., Any]:
    # A closure, not a default argument: tf.function would try to hash the default.
    return lambda *args: fn(model, *args)


def export(model: keras.Model, endpoints: dict[str, Endpoint], export_dir: Path) -> None:
    if list(endpoints) == ["serve"] and endpoints["serve"].signature is None:
        model.export(str(export_dir), verbose=False)
        return
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoints' variables are tracked by add_endpoint, and track() would make
    # write_out trace the whole model once more (Keras' _default_save_signature), for lookup tables there are none of.
    for name, endpoint in endpoints.items():
        archive.add_endpoint(name, _bind(endpoint.fn, model), endpoint.signature)
    archive.write_out(str(export_dir), verbose=False)


def _arg_spec(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """Store `value`'s arrays in `arrays`; return its structure with their keys at the leaves."""
    if isinstance(value, dict):
        return {k: _arg_spec(v, f"{key}.{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_arg_spec(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]
    arrays[key] = np.asarray(value)
    return key


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Any]:
    """Builds, exports and saves every case, then has the fresh TF-only process serve them all."""
    root = tmp_path_factory.mktemp("export")
    request, cases = [], {}
    for index, (name, (build, endpoints)) in enumerate(CASES.items()):
        keras.utils.set_random_seed(index)
        model = randomize(build(), seed=index)
        case_dir = root / name
        case_dir.mkdir()
        export(model, endpoints, case_dir / "saved_model")
        model.save(case_dir / "model.keras")
        arrays: dict[str, np.ndarray] = {}
        calls = [
            [endpoint_name, [_arg_spec(a, f"{endpoint_name}.{i}", arrays) for i, a in enumerate(endpoint.args)]]
            for endpoint_name, endpoint in endpoints.items()
        ]
        np.savez(case_dir / "inputs.npz", **arrays)
        request.append([name, str(case_dir / "saved_model"), str(case_dir / "inputs.npz"), calls])
        cases[name] = {"model": model, "expected": run_endpoints(model, endpoints), "dir": case_dir}
    stdout, stderr = _LOADER.communicate(json.dumps(request) + "\n", timeout=600)
    assert _LOADER.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    return {"cases": cases, "report": report}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], fragment: str = "") -> None:
    want = {key: value for key, value in want.items() if fragment in key}
    got = {key: value for key, value in got.items() if fragment in key}
    assert want, f"no output named like {fragment!r}"
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].shape == value.shape, key
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(got[key], value, atol=1e-5, rtol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_the_serving_process_did_not_import_rnnpipe(exported):
    assert exported["report"]["rnnpipe_imported"] is False


@pytest.mark.parametrize("piece", list(PIECES))
def test_savedmodel_served_by_tensorflow_alone_gives_identical_outputs(exported, piece):
    case, fragment = PIECES[piece]
    error = exported["report"]["errors"].get(case)
    assert error is None, error
    state = exported["cases"][case]
    assert_same(dict(np.load(state["dir"] / "served.npz")), state["expected"], fragment)


@pytest.mark.parametrize("case", list(CASES))
def test_keras_file_round_trip_gives_identical_outputs(exported, case):
    state = exported["cases"][case]
    loaded = keras.models.load_model(state["dir"] / "model.keras")
    assert type(loaded) is type(state["model"])
    assert_same(run_endpoints(loaded, CASES[case][1]), state["expected"])


def test_outputs_are_not_trivial(exported):
    # Random weights and inputs must give varied values, or "identical outputs" would prove little.
    for case, state in exported["cases"].items():
        for key, value in state["expected"].items():
            if np.issubdtype(value.dtype, np.floating) and value.size > 1:
                assert np.unique(value).size > 1, (case, key)
    assert isinstance(exported["cases"]["seq2seq"]["model"], Seq2Seq)


def test_every_public_layer_has_an_export_case():
    public = {
        name
        for name, obj in vars(models).items()
        if inspect.isclass(obj)
        and issubclass(obj, keras.layers.Layer)
        and (keras.saving.get_registered_name(obj) or "").startswith("rnnpipe>")
    }
    assert public - set(PIECES) == set(), f"add an export case for {sorted(public - set(PIECES))}"
