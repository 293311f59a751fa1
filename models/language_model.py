"""Recurrent language model: token ids -> next-token logits, trained with truncated BPTT; sampling helpers.

Conventions:

* token ids are int `[batch, time]`, right-padded with id 0 (padding is never
  a target: the loss and `BitsPerCharacter` ignore it, the samplers never
  draw it);
* the model returns logits `[batch, time, vocab_size]`;
* recurrent state is a flat list of `[batch, units]` tensors, layer after
  layer (`h, c` per LSTM layer, `h` per GRU layer).

`LanguageModel.train_step` implements truncated backpropagation through time
over long streams: each training example is a long sequence (a chunk of a
book) processed in segments of `bptt` steps; the state is carried from one
segment to the next (so the model always has the context of the whole chunk
so far) but gradients stop at segment boundaries, and the weights are updated
after every segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from ._stack import CELL_TYPES, recurrent_stack
from ._validation import (
    check_bool,
    check_choice,
    check_int_at_least,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_rate,
)

__all__ = [
    "BitsPerCharacter",
    "LanguageModel",
    "adaptive_token_log_probs",
    "build_language_model",
    "generate",
    "sample_with_temperature",
    "token_log_probs",
]

LM_CELL_TYPES = {name: CELL_TYPES[name] for name in ("lstm", "gru")}


@keras.saving.register_keras_serializable(package="rnnpipe")
class LanguageModel(keras.Model):
    """Embedding -> stacked LSTM/GRU (rnnpipe's fast layers) -> Dense next-token logits.

    Args:
        vocab_size: number of token ids including the padding id 0 (>= 2).
        embedding_dim: size of the token embedding.
        cell: `"lstm"` or `"gru"`.
        units: units of each recurrent layer.
        num_layers: number of stacked recurrent layers.
        dropout: dropout on the embedding and between layers (inputs of each
            recurrent layer and of the output layer), in [0, 1).
        bptt: truncation length of backpropagation through time: training
            sequences are processed in segments of this many steps with one
            weight update per segment (>= 1).
        layer_norm: layer-normalized recurrent cells.
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: int token ids `[batch, time]`.
        initial_state: optional flat list of state tensors (see
            `zero_state`).
        mask: optional boolean `[batch, time]`, False at right padding: the
            state stops changing there, so the final state is the state after
            each row's last real token.
        training: whether dropout is active.
        return_state: also return the final state list.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import LanguageModel
    >>> lm = LanguageModel(10, embedding_dim=4, units=8, num_layers=2, bptt=3)
    >>> logits, state = lm(np.array([[1, 2, 3, 4]]), return_state=True)
    >>> tuple(logits.shape), len(state)
    ((1, 4, 10), 4)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        cell: str = "lstm",
        units: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        bptt: int = 100,
        layer_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = check_int_at_least("vocab_size", vocab_size, 2)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.cell = check_choice("cell", cell, tuple(LM_CELL_TYPES))
        self.units = check_positive_int("units", units)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.dropout = check_rate("dropout", dropout)
        self.bptt = check_positive_int("bptt", bptt)
        self.layer_norm = check_bool("layer_norm", layer_norm)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.rnns = recurrent_stack(cell, units, num_layers, return_state=True, layer_norm=layer_norm)
        self.drop = keras.layers.Dropout(dropout, name="dropout")
        self.head = keras.layers.Dense(vocab_size, name="logits")
        # States per layer: LSTM carries (h, c), GRU h.
        self.states_per_layer = 2 if cell == "lstm" else 1
        # `call` takes an explicit padding mask; none is propagated to the logits.
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        batch, time = input_shape[0], input_shape[1]
        self.embedding.build((batch, time))
        features = self.embedding_dim
        for rnn in self.rnns:
            rnn.build((batch, time, features))
            features = self.units
        self.head.build((batch, time, features))
        self.built = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def zero_state(self, batch_size: Any) -> list[tf.Tensor]:
        """The initial state: zeros, `num_layers * (2 for LSTM, 1 for GRU)` tensors of `[batch, units]`."""
        return [tf.zeros((batch_size, self.units)) for _ in range(self.num_layers * self.states_per_layer)]

    def call(
        self,
        inputs: Any,
        initial_state: Sequence[Any] | None = None,
        mask: Any = None,
        training: bool = False,
        return_state: bool = False,
    ) -> Any:
        x, final_state = self.hidden_states(inputs, initial_state, mask=mask, training=training)
        logits = self.head(x)
        return (logits, final_state) if return_state else logits

    def hidden_states(self, inputs: Any, initial_state: Sequence[Any] | None = None, mask: Any = None,
                      training: bool = False) -> tuple[Any, list]:
        """What the output layer reads, `[batch, time, units]`, and the final state (arguments as for `call`)."""
        x = self.embedding(tf.cast(inputs, tf.int32))
        k = self.states_per_layer
        final_state = []
        for i, rnn in enumerate(self.rnns):
            if self.dropout > 0.0:
                x = self.drop(x, training=training)
            layer_state = None if initial_state is None else list(initial_state[i * k:(i + 1) * k])
            x, *state = rnn(x, initial_state=layer_state, mask=mask, training=training)
            final_state += state
        if self.dropout > 0.0:
            x = self.drop(x, training=training)
        return x, final_state

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
        time = tf.shape(x)[1]
        segments = (time + self.bptt - 1) // self.bptt

        def segment(i: tf.Tensor, state: tuple) -> tuple:
            start = i * self.bptt
            xs, ys = x[:, start:start + self.bptt], y[:, start:start + self.bptt]
            ws = None if sample_weight is None else sample_weight[:, start:start + self.bptt]
            with tf.GradientTape() as tape:
                logits, new_state = self(xs, initial_state=list(state), training=True, return_state=True)
                loss = self.compute_loss(x=xs, y=ys, y_pred=logits, sample_weight=ws, training=True)
                # Keras' own train_step feeds this tracker: it is what `fit` reports as "loss".
                self._loss_tracker.update_state(loss, sample_weight=tf.shape(xs)[0])
                scaled = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, self.trainable_weights)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
            self.compute_metrics(xs, ys, logits, sample_weight=ws)
            # Carry the state, truncate the gradient.
            return i + 1, tuple(tf.stop_gradient(s) for s in new_state)

        state = tuple(self.zero_state(tf.shape(x)[0]))
        if not tf.distribute.has_strategy():
            # One graph for any number of segments: a tf.while_loop rather than an unrolled Python loop keeps
            # tracing time independent of the sequence length.
            tf.while_loop(lambda i, _: i < segments, segment, (tf.constant(0), state))
        else:
            # Under a distribution strategy the gradient all-reduce may not sit inside control flow: unroll.
            if x.shape[1] is None:
                raise ValueError("LanguageModel.fit under a distribution strategy needs training sequences of a "
                                 f"static length to unroll bptt={self.bptt} segments. Received: inputs of shape "
                                 f"{x.shape}")
            for i in range(-(-x.shape[1] // self.bptt)):
                _, state = segment(tf.constant(i), state)
        return self.get_metrics_result()

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "bptt": self.bptt,
            "layer_norm": self.layer_norm,
        }


def build_language_model(
    vocab_size: int,
    *,
    embedding_dim: int = 64,
    cell: str = "lstm",
    units: int = 256,
    num_layers: int = 1,
    dropout: float = 0.0,
    bptt: int = 100,
    layer_norm: bool = False,
    name: str | None = None,
) -> LanguageModel:
    """A built, uncompiled `LanguageModel` (see there for the arguments).

    Compile it with a from-logits loss that ignores the padding id, e.g.
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True,
    ignore_class=0)`, and train it on `(ids[:, :-1], ids[:, 1:])` pairs of
    long sequences: `fit` runs truncated BPTT in segments of `bptt` steps.

    Example:

    >>> from rnnpipe.models import build_language_model
    >>> lm = build_language_model(30, embedding_dim=8, units=16, cell="gru")
    >>> lm.count_params() > 0, lm.cell
    (True, 'gru')
    """
    model = LanguageModel(vocab_size, embedding_dim=embedding_dim, cell=cell, units=units, num_layers=num_layers,
                          dropout=dropout, bptt=bptt, layer_norm=layer_norm, name=name or f"{cell}_language_model")
    model.build((None, None))
    return model


@keras.saving.register_keras_serializable(package="rnnpipe")
class BitsPerCharacter(keras.metrics.Metric):
    """Mean negative log2-likelihood of the targets (bits per token), padding ignored.

    Args:
        from_logits: whether predictions are logits (else probabilities).
        ignore_class: target id that is not scored (the padding id).
        name, dtype: as for any metric.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import BitsPerCharacter
    >>> m = BitsPerCharacter()
    >>> m.update_state(np.array([[1, 0]]), np.zeros((1, 2, 4), "float32"))  # uniform over 4 ids
    >>> round(float(m.result()), 4)
    2.0
    """

    def __init__(self, from_logits: bool = True, ignore_class: int | None = 0, name: str = "bits_per_character",
                 dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.from_logits = check_bool("from_logits", from_logits)
        self.ignore_class = ignore_class
        self.total_bits = self.add_variable(shape=(), initializer="zeros", name="total_bits")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = tf.cast(y_true, tf.int32)
        y_pred = tf.cast(y_pred, tf.float32)
        log_probs = tf.nn.log_softmax(y_pred) if self.from_logits else tf.math.log(tf.maximum(y_pred, 1e-12))
        picked = tf.gather(log_probs, y_true, batch_dims=y_true.shape.rank)
        weight = tf.ones_like(picked)
        if self.ignore_class is not None:
            weight *= tf.cast(tf.not_equal(y_true, self.ignore_class), tf.float32)
        if sample_weight is not None:
            weight *= tf.cast(tf.broadcast_to(sample_weight, tf.shape(weight)), tf.float32)
        self.total_bits.assign_add(-tf.reduce_sum(picked * weight) / math.log(2.0))
        self.count.assign_add(tf.reduce_sum(weight))

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(self.total_bits, self.count)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


def token_log_probs(model: LanguageModel, ids: Any) -> tf.Tensor:
    """Natural-log probability of every next token: `[batch, time - 1]`, entry t = log p(ids[t+1] | ids[:t+1]).

    Positions whose target is padding (id 0) hold garbage: mask them with `ids[:, 1:] != 0`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_language_model, token_log_probs
    >>> lm = build_language_model(5, embedding_dim=4, units=4)
    >>> lp = token_log_probs(lm, np.array([[1, 2, 3, 0]]))
    >>> tuple(lp.shape), bool((lp.numpy() <= 0).all())
    ((1, 3), True)
    """
    ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
    logits = model(ids[:, :-1], training=False)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    return tf.gather(log_probs, ids[:, 1:], batch_dims=2)


def adaptive_token_log_probs(model: LanguageModel, ids: Any, rate: Any, segment: int = 50) -> tf.Tensor:
    """`token_log_probs` with the output layer adapted to each row as it is read: dynamic evaluation
    (Krause et al., 2018) of the last layer. Every `segment` tokens, each row's own copy of the output layer
    takes one SGD step of `rate` on those tokens' mean loss, so a name or a turn of phrase seen earlier in a
    document is likelier later in it. Every token is scored before the step that learns from it, and the
    model's weights do not change: rows are independent, and calls too.

    Only the output layer adapts: its gradient needs no backpropagation through the recurrent layers, so this
    costs about what `token_log_probs` does (adapting every weight costs three times as much).

    Args:
        model: a `LanguageModel`.
        ids: int token ids `[batch, time]`, right-padded with 0 (padding neither scored nor learnt from).
        rate: SGD learning rate >= 0, a number or `[batch]` (0 = `token_log_probs`); a tensor is checked in
            the graph.
        segment: tokens per step (>= 1).

    Returns:
        `[batch, time - 1]`: entry t = log p(ids[t+1] | ids[:t+1]) under the layer adapted to ids[:t+1]'s
        segments before t's own. Positions whose target is padding hold garbage.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import adaptive_token_log_probs, build_language_model, token_log_probs
    >>> lm = build_language_model(5, embedding_dim=4, units=4)
    >>> ids = np.array([[1, 2, 3, 4] * 25])
    >>> np.allclose(adaptive_token_log_probs(lm, ids, 0.0), token_log_probs(lm, ids), atol=1e-5)
    True
    >>> bool(adaptive_token_log_probs(lm, ids, 1.0, segment=4).numpy().sum() > token_log_probs(lm, ids).numpy().sum())
    True
    """
    segment = check_positive_int("segment", segment)
    rate = _checked_float("rate", rate, check_non_negative_float, tf.debugging.assert_non_negative, ">= 0")
    ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
    batch, time = tf.shape(ids)[0], tf.shape(ids)[1] - 1
    steps = (time + segment - 1) // segment
    padded = tf.pad(ids, [[0, 0], [0, steps * segment - time]])
    inputs = tf.transpose(tf.reshape(padded[:, :-1], [batch, steps, segment]), [1, 0, 2])
    targets = tf.transpose(tf.reshape(padded[:, 1:], [batch, steps, segment]), [1, 0, 2])
    rate = tf.reshape(tf.broadcast_to(rate, [batch]), [batch, 1, 1])
    kernel = tf.tile(tf.cast(model.head.kernel, tf.float32)[None], [batch, 1, 1])  # [batch, units, vocab]
    bias = tf.tile(tf.cast(model.head.bias, tf.float32)[None], [batch, 1])

    def body(i: tf.Tensor, state: tuple, kernel: tf.Tensor, bias: tf.Tensor, out: tf.TensorArray) -> tuple:
        hidden, new_state = model.hidden_states(inputs[i], initial_state=list(state), training=False)
        hidden = tf.cast(hidden, tf.float32)
        log_probs = tf.nn.log_softmax(tf.einsum("bsu,buv->bsv", hidden, kernel) + bias[:, None])
        target = targets[i]
        weight = tf.cast(tf.not_equal(target, 0), tf.float32)
        weight /= tf.maximum(tf.reduce_sum(weight, axis=1, keepdims=True), 1.0)
        # d(mean loss)/d(logits) = softmax - one-hot, per scored token
        grad = (tf.exp(log_probs) - tf.one_hot(target, tf.shape(bias)[1])) * weight[..., None]
        kernel -= rate * tf.einsum("bsu,bsv->buv", hidden, grad)
        bias -= rate[:, 0] * tf.reduce_sum(grad, axis=1)
        picked = tf.gather(log_probs, target, batch_dims=2)
        return i + 1, tuple(tf.stop_gradient(s) for s in new_state), kernel, bias, out.write(i, picked)

    out = tf.TensorArray(tf.float32, size=steps, element_shape=[None, segment])
    *_, out = tf.while_loop(lambda i, *_: i < steps, body,
                            (tf.constant(0), tuple(model.zero_state(batch)), kernel, bias, out))
    picked = tf.reshape(tf.transpose(out.stack(), [1, 0, 2]), [batch, steps * segment])
    return picked[:, :time]


def _checked_float(name: str, value: Any, check: Callable[[str, Any], float], graph_check: Callable[..., Any],
                   expected: str) -> tf.Tensor:
    """``value`` as float32: a Python number (or bool, refused) checked now with ``check``, a tensor in the graph
    with ``graph_check`` (``tf.debugging.assert_*``), its message '<name> must be <expected>'."""
    if isinstance(value, (int, float)):
        return tf.constant(check(name, value), tf.float32)
    value = tf.cast(value, tf.float32)
    with tf.control_dependencies([graph_check(value, message=f"{name} must be {expected}")]):
        return tf.identity(value)


def _check_temperature(temperature: Any) -> tf.Tensor:
    return _checked_float("temperature", temperature, check_positive_float, tf.debugging.assert_positive,
                          "> 0 (1.0 samples the model's distribution)")


def sample_with_temperature(logits: Any, temperature: Any = 1.0, *, banned_ids: Sequence[int] = (0,),
                            seed: int | None = None) -> tf.Tensor:
    """Draws one id per row from `softmax(logits / temperature)`; `banned_ids` (padding) are never drawn.

    Args:
        logits: `[batch, vocab]` float.
        temperature: > 0; a number, or a `[batch]` / scalar tensor (checked
            in the graph). Low values approach greedy decoding, 1.0 samples
            the model's distribution, higher values flatten it.
        banned_ids: ids that must never be sampled.
        seed: op seed for `tf.random.categorical`.

    Returns:
        int32 `[batch]` ids.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import sample_with_temperature
    >>> sample_with_temperature(np.array([[0.0, 9.0, 1.0]]), 0.01).numpy().tolist()
    [1]
    """
    temperature = _check_temperature(temperature)
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    if temperature.shape.rank == 1:
        temperature = temperature[:, None]
    if banned_ids:
        vocab = tf.shape(logits)[-1]
        banned = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], tf.constant(list(banned_ids))[None, :]), axis=1)
        logits = tf.where(banned[None, :], tf.fill(tf.shape(logits), -1e9), logits)
    drawn = tf.random.categorical(logits / temperature, 1, dtype=tf.int32, seed=seed)
    return drawn[:, 0]


def generate(model: LanguageModel, prompt_ids: Any, length: Any, temperature: Any = 1.0, *,
             banned_ids: Sequence[int] = (0,), seed: int | None = None) -> tf.Tensor:
    """Samples `length` ids after each prompt, in a `tf.while_loop` (exports inside a SavedModel).

    Args:
        model: a `LanguageModel`.
        prompt_ids: int `[batch, time]`, right-padded with 0; every row needs
            at least one real id (the model conditions on it).
        length: number of ids to sample (int >= 0 or a scalar int tensor).
        temperature: see `sample_with_temperature`.
        banned_ids: ids never sampled (padding, out-of-vocabulary ids).
        seed: op seed for sampling.

    Returns:
        int32 `[batch, length]` sampled ids.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_language_model, generate
    >>> lm = build_language_model(6, embedding_dim=4, units=4)
    >>> out = generate(lm, np.array([[1, 2, 0], [3, 0, 0]]), 5, temperature=0.5)
    >>> tuple(out.shape), bool((out.numpy() > 0).all())
    ((2, 5), True)
    """
    if isinstance(length, int) and not isinstance(length, bool):
        check_int_at_least("length", length, 0)
    length = tf.cast(length, tf.int32)
    prompt_ids = tf.cast(tf.convert_to_tensor(prompt_ids), tf.int32)
    temperature = _check_temperature(temperature)
    with tf.control_dependencies([tf.debugging.assert_non_negative(length, message="length must be >= 0")]):
        length = tf.identity(length)
    # Masked steps keep the state and repeat the previous output, so the last position holds the logits after
    # each row's last real id.
    logits, state = model(prompt_ids, mask=tf.not_equal(prompt_ids, 0), training=False, return_state=True)
    batch = tf.shape(prompt_ids)[0]

    def body(step: tf.Tensor, last_logits: tf.Tensor, state: tuple, out: tf.TensorArray) -> tuple:
        next_ids = sample_with_temperature(last_logits, temperature, banned_ids=banned_ids, seed=seed)
        step_logits, new_state = model(next_ids[:, None], initial_state=list(state), training=False,
                                       return_state=True)
        return step + 1, step_logits[:, -1], tuple(new_state), out.write(step, next_ids)

    out = tf.TensorArray(tf.int32, size=length, element_shape=tf.TensorShape([None]))
    _, _, _, out = tf.while_loop(lambda step, *_: step < length, body,
                                 (tf.constant(0), logits[:, -1], tuple(state), out))
    # An empty TensorArray cannot be stacked without a full element shape: length 0 is its own branch.
    return tf.cond(length > 0, lambda: tf.transpose(out.stack()), lambda: tf.zeros([batch, 0], tf.int32))
