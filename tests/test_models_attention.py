"""AdditiveAttention and MultiplicativeAttention: masking, maths against numpy, configs and `.keras` files."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

from rnnpipe.models import AdditiveAttention, MultiplicativeAttention

B, TQ, TV, D = 3, 4, 5, 6
QUERY_MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
VALUE_MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 0, 1, 0]], bool)


def layers():
    return [
        AdditiveAttention(7),
        AdditiveAttention(7, use_bias=False),
        MultiplicativeAttention("dot"),
        MultiplicativeAttention("general"),
        MultiplicativeAttention("concat", units=5),
    ]


IDS = ["additive", "additive-no-bias", "dot", "general", "concat"]


def inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, TQ, D)).astype("float32"), rng.normal(size=(B, TV, D)).astype("float32")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("layer", layers(), ids=IDS)
def test_masked_values_get_zero_weight_and_masked_queries_zero_context(layer):
    query, value = inputs()
    context, weights = (np.asarray(t) for t in layer(query, value, mask=[QUERY_MASK, VALUE_MASK]))
    assert context.shape == (B, TQ, D) and weights.shape == (B, TQ, TV)
    for b in range(B):
        for i in range(TQ):
            if QUERY_MASK[b, i]:
                np.testing.assert_allclose(weights[b, i].sum(), 1.0, rtol=1e-5)
                assert (weights[b, i, ~VALUE_MASK[b]] == 0.0).all()
                assert (weights[b, i, VALUE_MASK[b]] > 0.0).all()
                np.testing.assert_allclose(context[b, i], weights[b, i] @ value[b], rtol=1e-5, atol=1e-6)
            else:
                assert (weights[b, i] == 0.0).all() and (context[b, i] == 0.0).all()
    # Padding carries no information: changing masked values changes nothing.
    noisy = value.copy()
    noisy[~VALUE_MASK] = 1e3
    context2, weights2 = layer(query, noisy, mask=[QUERY_MASK, VALUE_MASK])
    np.testing.assert_allclose(np.asarray(context2), context, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights2), weights, rtol=1e-5, atol=1e-6)


def test_a_row_with_every_value_masked_is_zero_not_nan():
    query, value = inputs()
    value_mask = np.zeros((B, TV), bool)
    for layer in layers():
        context, weights = layer(query, value, mask=[None, value_mask])
        assert (np.asarray(weights) == 0.0).all() and (np.asarray(context) == 0.0).all()


def test_dot_score_matches_a_numpy_softmax():
    query, value = inputs(1)
    context, weights = MultiplicativeAttention("dot")(query, value, mask=[None, VALUE_MASK])
    scores = np.einsum("bqd,bvd->bqv", query, value)
    scores = np.where(VALUE_MASK[:, None, :], scores, -np.inf)
    expected = softmax(scores.astype("float64"))
    np.testing.assert_allclose(np.asarray(weights), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(context), expected @ value, rtol=1e-5, atol=1e-6)


def test_general_and_additive_scores_match_numpy():
    query, value = inputs(2)
    general = MultiplicativeAttention("general")
    _, weights = general(query, value)
    kernel = general.kernel.numpy()
    np.testing.assert_allclose(np.asarray(weights), softmax(query @ kernel @ value.transpose(0, 2, 1)), rtol=1e-5)

    additive = AdditiveAttention(7, bias_initializer="random_normal")
    _, weights = additive(query, value)
    hidden = (query @ additive.query_kernel.numpy())[:, :, None] + (value @ additive.value_kernel.numpy())[:, None]
    scores = np.tanh(hidden + additive.bias.numpy()) @ additive.score_kernel.numpy()
    np.testing.assert_allclose(np.asarray(weights), softmax(scores), rtol=1e-5, atol=1e-7)


def test_keras_masks_are_used_and_the_query_mask_is_propagated():
    query_tokens, value_tokens = keras.Input((None,), dtype="int64"), keras.Input((None,), dtype="int64")
    embedding = keras.layers.Embedding(20, D, mask_zero=True)
    attention = MultiplicativeAttention("general")
    context, weights = attention(embedding(query_tokens), embedding(value_tokens))
    model = keras.Model([query_tokens, value_tokens], [context, weights])
    q = np.array([[1, 2, 0], [3, 0, 0]])
    v = np.array([[4, 5, 6, 0], [7, 8, 0, 0]])
    context, weights = (np.asarray(t) for t in model([q, v]))
    np.testing.assert_array_equal(weights[:, :, :] > 0, (q > 0)[:, :, None] & (v > 0)[:, None, :])
    assert (context[q == 0] == 0).all()
    # Explicit masks give the same result as the Keras ones.
    explicit = model.layers[-1]
    emb_q, emb_v = embedding(q), embedding(v)
    _, explicit_weights = explicit(emb_q, emb_v, mask=[q > 0, v > 0])
    np.testing.assert_allclose(np.asarray(explicit_weights), weights, rtol=1e-6)
    # The query mask rides on both outputs, so a following rnnpipe/Keras layer skips padded query steps.
    assert keras.ops.convert_to_numpy(attention.compute_mask(emb_q, q > 0)[0]).tolist() == (q > 0).tolist()


def test_bad_arguments_raise_value_errors_naming_expected_and_received():
    with pytest.raises(ValueError, match=r"`score` must be one of 'dot', 'general', 'concat'\. Received: score='cos'"):
        MultiplicativeAttention("cos")
    with pytest.raises(ValueError, match=r"`units` must be a positive integer .*Received: units=0"):
        AdditiveAttention(0)
    with pytest.raises(ValueError, match=r"`units` must be a positive integer .*Received: units=-2"):
        MultiplicativeAttention("concat", units=-2)
    with pytest.raises(ValueError, match=r"same feature size\. Received: query features=6, value features=3"):
        MultiplicativeAttention("dot")(np.zeros((1, 2, 6), "float32"), np.zeros((1, 2, 3), "float32"))
    expected = r"`mask` must be a list \[query_mask, value_mask\].*Received: a single .* of shape \(3, 5\)"
    with pytest.raises(ValueError, match=expected):
        MultiplicativeAttention("dot")(*inputs(), mask=VALUE_MASK)


@pytest.mark.parametrize("layer", layers(), ids=IDS)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.get_registered_name(type(layer)) == f"rnnpipe>{type(layer).__name__}"


def test_get_config_covers_every_constructor_argument():
    for cls, kwargs in (
        (AdditiveAttention, {"units": 3, "use_bias": False, "kernel_initializer": "he_normal",
                             "bias_initializer": "ones"}),
        (MultiplicativeAttention, {"score": "concat", "units": 3, "kernel_initializer": "he_normal"}),
    ):
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind is not p.VAR_KEYWORD]
        assert {p.name for p in params} == set(kwargs)
        config = cls(**kwargs).get_config()
        assert set(kwargs) <= set(config)
        for name, value in kwargs.items():
            if not name.endswith("initializer"):
                assert config[name] == value, name
        assert config["kernel_initializer"]["class_name"] == "HeNormal"


def test_attention_layers_survive_a_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    query_in, value_in = keras.Input((TQ, D)), keras.Input((None, D))
    outputs = []
    for layer in layers():
        context, weights = layer(query_in, value_in)
        outputs += [context, weights]
    model = keras.Model([query_in, value_in], outputs)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    query, value = inputs(4)
    expected = [np.asarray(t) for t in model([query, value])]

    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for got, want in zip(loaded([query, value]), expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)
    assert [type(la).__name__ for la in loaded.layers[2:]] == [type(la).__name__ for la in layers()]
