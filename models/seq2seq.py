"""Encoder-decoder with attention: teacher-forced training, greedy and beam-search decoding in TF ops.

Architecture (Luong et al., 2015, with either attention score):

* encoder: source embedding (id 0 is padding and is masked) -> `num_layers` rnnpipe recurrent layers
  (`keras.layers.Bidirectional` around each when `bidirectional=True`);
* bridge: each decoder layer starts from the final states of the encoder layer at the same depth (for a
  bidirectional encoder, the forward and backward states are concatenated and mapped to `units` by a
  `Dense(tanh)` per state);
* decoder: target embedding -> `num_layers` rnnpipe recurrent layers -> attention of the top decoder output
  over the top encoder outputs (`AdditiveAttention`, i.e. Bahdanau's score, or `MultiplicativeAttention` with
  Luong's "dot" / "general" / "concat" score), padding masked on both sides -> with `context_layer=True`, one
  more recurrent layer over `[decoder output; context]` -> `Dense(units, tanh)` of `[decoder output; context]`
  -> logits over the target vocabulary (with `tie_embeddings=True`, a `Dense(embedding_dim, tanh)` whose
  dot products with the target embeddings, plus a `Bias`, are the logits), plus, with `lexical_bias=True`, the
  log of a translation lexicon's probabilities mixed by the same attention weights (`LexicalBias`).

The attention is applied after the decoder's recurrence (the context is not fed back into the next step's
input), so teacher-forced training runs the decoder as one fast sequence layer rather than a Python-level
step loop. Luong's input feeding would make every step wait for the previous step's attention; the context
layer (as in GNMT, Wu et al., 2016) instead lets the output see the attention of every earlier step, while
the attention reads the layers below it, which run over the whole sequence first. Decoding runs the same
weights one step at a time through the cells' `project_inputs` / `recurrent_step`, inside a `tf.while_loop`
written without autograph, so `greedy_decode` and `beam_search_decode` trace in a
`tf.function(autograph=False)` and export as SavedModel signatures.

Token conventions: id 0 is padding in source and target; `start_id` (default 1) starts every decoder input
and `end_id` (default 2) ends every target. For a target `y_1 .. y_n` the decoder input is
`[start, y_1 .. y_n]` and the label is `[y_1 .. y_n, end]`, both right-padded with 0; train with
`keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._stack import check_stack_arguments, recurrent_layer, recurrent_stack
from ._validation import (
    check_bool,
    check_choice,
    check_int_at_least,
    check_non_negative_float,
    check_positive_int,
    check_rate,
)
from .attention import AdditiveAttention, MultiplicativeAttention
from .bias import Bias
from .lexical import LexicalBias

__all__ = ["ATTENTION_TYPES", "Seq2Seq", "build_seq2seq", "check_decoding_penalty"]

ATTENTION_TYPES = ("additive", "dot", "general", "concat")

# A finite stand-in for log(0): keeps (score + log p) and the length normalisation free of inf - inf.
_NEG = -1e9


def _length_penalty(lengths: tf.Tensor, alpha: float) -> tf.Tensor:
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016); 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def check_decoding_penalty(name: str, value: Any) -> float:
    """`Seq2Seq.beam_search_decode`'s check of `length_penalty` and `coverage_penalty` (a finite number >= 0),
    for callers that want to fail on a bad setting before there is a trained model to decode with."""
    return check_non_negative_float(name, value)


def _coverage_penalty(coverage: tf.Tensor, source_mask: tf.Tensor, beta: float) -> tf.Tensor:
    """GNMT's coverage penalty (Wu et al., 2016), `beta * sum_j log(min(coverage_j, 1))` over the source pieces
    (padding excluded): 0 when every piece got a total attention of 1 or more, below 0 for each one the
    hypothesis attended less. `coverage` `[..., S]` is the attention summed over the target steps."""
    covered = tf.where(source_mask, tf.minimum(coverage, 1.0), 1.0)
    # The floor only keeps log finite where a softmax weight underflowed to 0.
    return beta * tf.reduce_sum(tf.math.log(tf.maximum(covered, 1e-10)), axis=-1)


def _check_max_length(max_length: Any) -> Any:
    # A tensor (e.g. a serving-signature input) is taken as is; a Python number is checked here.
    if isinstance(max_length, (tf.Tensor, tf.Variable)):
        return tf.cast(max_length, tf.int32)
    if isinstance(max_length, np.ndarray) and max_length.ndim == 0:
        max_length = max_length.item()
    return tf.constant(check_positive_int("max_length", max_length), tf.int32)


@keras.saving.register_keras_serializable(package="rnnpipe")
class Seq2Seq(keras.Model):
    """Encoder-decoder with attention over rnnpipe's fast recurrent layers (see the module docstring).

    Called on `{"source": [batch, S] ids, "target_in": [batch, T] ids}` (teacher forcing), it returns
    logits `[batch, T, target_vocab_size]`. `greedy_decode` and `beam_search_decode` generate from a source
    alone.

    Args:
        source_vocab_size: number of source ids including padding 0 (>= 2).
        target_vocab_size: number of target ids including padding 0, `start_id` and `end_id` (>= 3).
        embedding_dim: size of both token embeddings.
        embeddings_initializer: initializer of both embeddings (anything `keras.initializers.get` takes).
            Keras' default `"uniform"` (+-0.05) suits small vocabularies; with thousands of target ids the
            decoder can stall at the unigram loss from such small inputs, where `RandomNormal(stddev=1.0)`
            learns (see `tests/test_models_seq2seq.py`).
        cell: `"gru"`, `"lstm"` or `"simple_rnn"`.
        units: units of every recurrent layer (per direction in the encoder).
        num_layers: recurrent layers in the encoder and in the decoder (>= 1).
        bidirectional: bidirectional encoder layers.
        dropout: input dropout of every recurrent layer and dropout before the logits, in [0, 1).
        recurrent_dropout: recurrent dropout of every recurrent layer, in [0, 1).
        attention: `"additive"` (Bahdanau's score) or Luong's `"dot"`, `"general"`, `"concat"`. `"dot"`
            needs encoder outputs of the decoder's size, i.e. `bidirectional=False`.
        attention_units: hidden size of the `"additive"` / `"concat"` scores; `None` means `units`.
        start_id: target id that starts decoding.
        end_id: target id that ends a sequence.
        max_source_length, max_target_length: static lengths of the inputs, or `None` (variable).
        lexical_bias: add a `LexicalBias` layer (named `"lexical_bias"`) to the logits; its table is all zeros,
            i.e. no bias, until set with `model.get_layer("lexical_bias").set_table(...)` before training.
        lexical_epsilon: the `LexicalBias` floor, in (0, 1).
        guided_alignment: with `lexical_bias`, the weight of `LexicalBias`' guided-alignment loss in training:
            the attention is taught the lexicon's alignment of each target token, >= 0 (0 = off).
        word_dropout: in training, the probability of dropping a whole token's embedding (source and
            teacher-forced target alike; the rest are scaled by `1 / (1 - word_dropout)`), in [0, 1): with
            few sentence pairs the model then leans less on any one word (Sennrich and Zhang, 2019).
        context_layer: add a recurrent layer (named `"context_<cell>"`, `units` wide) over the top decoder
            output and the attention's context at every step, read by the output instead of the top decoder
            output: what was attended to at earlier steps (already translated) then shapes the next token.
            It starts from the top decoder layer's initial states.
        tie_embeddings: the logits are the dot products of the attentional vector (then `embedding_dim`
            wide) with the target embeddings, whose matrix serves both ends (`keras.layers.ReversibleEmbedding`,
            Press and Wolf, 2017): a target piece's embedding is trained by every step that predicts it as
            well as every step it is read at, and the output layer costs `embedding_dim` instead of `units`
            multiply-adds a logit.
        name: model name.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_seq2seq
    >>> model = build_seq2seq(12, 12, embedding_dim=8, units=8)
    >>> source = np.array([[5, 6, 7, 0], [4, 3, 0, 0]])
    >>> tuple(model({"source": source, "target_in": np.array([[1, 7, 6, 5], [1, 3, 4, 0]])}).shape)
    (2, 4, 12)
    >>> out = model.beam_search_decode(source, beam_width=3, max_length=5)
    >>> tuple(out["tokens"].shape[:1]), tuple(out["attention"].shape[::2])
    ((2,), (2, 4))
    >>> bool(np.all(out["attention"].numpy()[1, :, 2:] == 0.0))  # source padding gets no attention
    True
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embedding_dim: int = 64,
        cell: str = "gru",
        units: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        attention: str = "additive",
        attention_units: int | None = None,
        start_id: int = 1,
        end_id: int = 2,
        max_source_length: int | None = None,
        max_target_length: int | None = None,
        embeddings_initializer: Any = "uniform",
        lexical_bias: bool = False,
        lexical_epsilon: float = 1e-3,
        guided_alignment: float = 0.0,
        word_dropout: float = 0.0,
        context_layer: bool = False,
        tie_embeddings: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        source_vocab_size = check_int_at_least("source_vocab_size", source_vocab_size, 2)
        target_vocab_size = check_int_at_least("target_vocab_size", target_vocab_size, 3)
        embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        try:
            initializer = keras.initializers.get(embeddings_initializer)
        except (ValueError, TypeError):
            raise ValueError(
                "Expected `embeddings_initializer` to be a Keras initializer or its name or config. "
                f"Received: embeddings_initializer={embeddings_initializer!r}"
            ) from None
        cell, units, num_layers, bidirectional, dropout, recurrent_dropout = check_stack_arguments(
            cell, units, num_layers, bidirectional, dropout, recurrent_dropout
        )
        check_choice("attention", attention, ATTENTION_TYPES)
        if attention_units is not None:
            attention_units = check_positive_int("attention_units", attention_units)
        for arg, value in (("start_id", start_id), ("end_id", end_id)):
            value = check_positive_int(arg, value)
            if value >= target_vocab_size:
                raise ValueError(
                    f"Argument `{arg}` must be in [1, target_vocab_size - 1] = [1, {target_vocab_size - 1}] "
                    f"(0 is padding). Received: {arg}={value!r}"
                )
        start_id, end_id = int(start_id), int(end_id)
        if start_id == end_id:
            raise ValueError(f"Arguments `start_id` and `end_id` must differ. Received: both {start_id}")
        if attention == "dot" and bidirectional:
            raise ValueError(
                "attention='dot' needs encoder outputs of the decoder's size (units), but a bidirectional "
                f"encoder outputs 2 * units = {2 * units}. Expected bidirectional=False or another score. "
                "Received: attention='dot', bidirectional=True"
            )
        for arg, value in (("max_source_length", max_source_length), ("max_target_length", max_target_length)):
            if value is not None:
                check_positive_int(arg, value)
        word_dropout = check_rate("word_dropout", word_dropout)
        context_layer = check_bool("context_layer", context_layer)
        tie_embeddings = check_bool("tie_embeddings", tie_embeddings)

        source_embedding = keras.layers.Embedding(
            source_vocab_size, embedding_dim, mask_zero=True, embeddings_initializer=initializer,
            name="source_embedding",
        )
        target_embedding = (keras.layers.ReversibleEmbedding if tie_embeddings else keras.layers.Embedding)(
            target_vocab_size, embedding_dim, mask_zero=True, embeddings_initializer=initializer,
            name="target_embedding",
        )
        rnn_args = {"dropout": dropout, "recurrent_dropout": recurrent_dropout}
        encoders, bridges = [], []
        for index in range(num_layers):
            # Each layer's bridges are made right after it: the order in which layers draw their initial
            # weights from the global seed.
            encoders.append(
                recurrent_layer(
                    cell,
                    units,
                    bidirectional=bidirectional,
                    return_sequences=True,
                    return_state=True,
                    name=f"encoder_{cell}_{index}",
                    bidirectional_name=f"encoder_{index}",
                    **rnn_args,
                )
            )
            if bidirectional:
                states = 2 if cell == "lstm" else 1
                bridges.append(
                    [keras.layers.Dense(units, activation="tanh", name=f"bridge_{index}_{s}") for s in range(states)]
                )
        decoders = recurrent_stack(cell, units, num_layers, name="decoder_{cell}_{index}", **rnn_args)
        if attention == "additive":
            attention_layer = AdditiveAttention(attention_units or units, name="attention")
        else:
            attention_layer = MultiplicativeAttention(attention, units=attention_units, name="attention")
        context_rnn = recurrent_layer(cell, units, return_sequences=True, name=f"context_{cell}", **rnn_args) \
            if context_layer else None
        # Tied, the attentional vector lives in the embedding space: the logits are its dot products with the
        # target embeddings (Press and Wolf, 2017).
        attentional = keras.layers.Dense(embedding_dim if tie_embeddings else units, activation="tanh",
                                         name="attentional")
        output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        logits_layer = _tied_logits(target_embedding, Bias(target_vocab_size, name="logits")) if tie_embeddings \
            else keras.layers.Dense(target_vocab_size, name="logits")
        lexical_bias = check_bool("lexical_bias", lexical_bias)
        guided_alignment = check_non_negative_float("guided_alignment", guided_alignment)
        if guided_alignment and not lexical_bias:
            raise ValueError("guided_alignment learns the lexicon's alignment and needs lexical_bias=True. "
                             f"Received: guided_alignment={guided_alignment!r}, lexical_bias=False")
        lexical = LexicalBias(source_vocab_size, target_vocab_size, lexical_epsilon,
                              alignment_weight=guided_alignment, name="lexical_bias") if lexical_bias else None
        # One mask value per token (noise_shape): a dropped token loses its whole embedding.
        word_dropouts = {side: keras.layers.Dropout(word_dropout, noise_shape=(None, None, 1),
                                                    name=f"{side}_word_dropout") if word_dropout else None
                         for side in ("source", "target")}

        source = keras.Input(shape=(max_source_length,), dtype="int32", name="source")
        target_in = keras.Input(shape=(max_target_length,), dtype="int32", name="target_in")
        parts = {
            "source_embedding": source_embedding,
            "target_embedding": target_embedding,
            "encoders": encoders,
            "bridges": bridges,
            "decoders": decoders,
            "attention": attention_layer,
            "context": context_rnn,
            "attentional": attentional,
            "output_dropout": output_dropout,
            "logits": logits_layer,
            "lexical_bias": lexical,
            "source_word_dropout": word_dropouts["source"],
            "target_word_dropout": word_dropouts["target"],
        }
        encoder_outputs, source_mask, initial_states = _encode(parts, source)
        logits = _decode_teacher_forced(parts, source, target_in, encoder_outputs, source_mask, initial_states)
        super().__init__(
            inputs={"source": source, "target_in": target_in},
            outputs=logits,
            name=name or f"{cell}_seq2seq",
            **kwargs,
        )
        self._arguments = {
            "source_vocab_size": source_vocab_size,
            "target_vocab_size": target_vocab_size,
            "embedding_dim": embedding_dim,
            "cell": cell,
            "units": units,
            "num_layers": num_layers,
            "bidirectional": bidirectional,
            "dropout": dropout,
            "recurrent_dropout": recurrent_dropout,
            "attention": attention,
            "attention_units": attention_units,
            "start_id": start_id,
            "end_id": end_id,
            "max_source_length": max_source_length,
            "max_target_length": max_target_length,
            "embeddings_initializer": keras.initializers.serialize(initializer),
            "lexical_bias": lexical_bias,
            "lexical_epsilon": float(lexical_epsilon),
            "guided_alignment": guided_alignment,
            "word_dropout": word_dropout,
            "context_layer": context_layer,
            "tie_embeddings": tie_embeddings,
        }

    # -- config ------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, **self._arguments}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Seq2Seq:
        return cls(**config)

    @property
    def start_id(self) -> int:
        return self._arguments["start_id"]

    @property
    def end_id(self) -> int:
        return self._arguments["end_id"]

    @property
    def _never_emitted(self) -> tf.Tensor:
        ids = tf.range(self._arguments["target_vocab_size"])
        return tf.logical_or(tf.equal(ids, 0), tf.equal(ids, self.start_id))

    def _parts(self) -> dict[str, Any]:
        # Looked up by name rather than stored as attributes, so the tracked structure (and the .keras
        # file) is exactly that of the functional graph.
        args = self._arguments
        layers = range(args["num_layers"])
        cell, states = args["cell"], (2 if args["cell"] == "lstm" else 1)
        return {
            "source_embedding": self.get_layer("source_embedding"),
            "target_embedding": self.get_layer("target_embedding"),
            "encoders": [
                self.get_layer(f"encoder_{i}" if args["bidirectional"] else f"encoder_{cell}_{i}") for i in layers
            ],
            "bridges": (
                [[self.get_layer(f"bridge_{i}_{s}") for s in range(states)] for i in layers]
                if args["bidirectional"]
                else []
            ),
            "decoders": [self.get_layer(f"decoder_{cell}_{i}") for i in layers],
            "attention": self.get_layer("attention"),
            "context": self.get_layer(f"context_{cell}") if args["context_layer"] else None,
            "attentional": self.get_layer("attentional"),
            "output_dropout": self.get_layer("output_dropout"),
            "logits": _tied_logits(self.get_layer("target_embedding"), self.get_layer("logits"))
            if args["tie_embeddings"] else self.get_layer("logits"),
            "lexical_bias": self.get_layer("lexical_bias") if args["lexical_bias"] else None,
            **{f"{side}_word_dropout": self.get_layer(f"{side}_word_dropout") if args["word_dropout"] else None
               for side in ("source", "target")},
        }

    # -- decoding ----------------------------------------------------------

    def _step(
        self,
        parts: dict[str, Any],
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        encoder_outputs: tf.Tensor,
        source_mask: tf.Tensor,
        source: tf.Tensor,
    ) -> tuple[tf.Tensor, list[tf.Tensor], tf.Tensor]:
        """One decoder step: `(log-probabilities [N, V], new flat states, attention [N, S])`."""
        remaining, new_states = iter(states), []

        def advance(layer: Any, inputs: tf.Tensor) -> tf.Tensor:
            # One step of a recurrent layer on its own states, the next ones of the flat list.
            own = [next(remaining) for _ in layer._state_sizes]
            output, layer_states = layer.cell.recurrent_step(layer.cell.project_inputs(inputs), own)
            new_states.extend(layer_states)
            return output

        x = parts["target_embedding"](tokens)
        for layer in parts["decoders"]:
            x = advance(layer, x)
        context, weights = parts["attention"](x[:, None, :], encoder_outputs, mask=[None, source_mask])
        context = context[:, 0, :]
        if parts["context"] is not None:
            x = advance(parts["context"], tf.concat([x, context], axis=-1))
        hidden = parts["attentional"](tf.concat([x, context], axis=-1))
        logits = tf.cast(parts["logits"](hidden), tf.float32)
        if parts["lexical_bias"] is not None:
            logits = parts["lexical_bias"]((logits[:, None, :], weights, source))[:, 0, :]
        # Padding and the start token are never outputs: renormalise over the other ids.
        logits = tf.where(self._never_emitted, tf.constant(_NEG, tf.float32), logits)
        return tf.nn.log_softmax(logits, axis=-1), new_states, weights[:, 0, :]

    def _start(self, source: Any) -> tuple[dict[str, Any], tf.Tensor, tf.Tensor, list[tf.Tensor], tf.Tensor]:
        parts = self._parts()
        source = tf.cast(tf.convert_to_tensor(source), tf.int32)
        encoder_outputs, source_mask, initial_states = _encode(parts, source, training=False)
        if parts["context"] is not None:
            initial_states = [*initial_states, initial_states[-1]]
        flat_states = [s for layer_states in initial_states for s in layer_states]
        return parts, encoder_outputs, source_mask, flat_states, source

    def greedy_decode(self, source: Any, max_length: Any = 50) -> dict[str, tf.Tensor]:
        """Most probable token at every step, until `end_id` in every row or `max_length` steps.

        Padding (0) and `start_id` are never emitted: the probabilities are renormalised over the other ids
        (also in `beam_search_decode`).

        Args:
            source: `[batch, S]` int ids, 0-padded.
            max_length: positive int or int scalar tensor, the most tokens generated (end token included).

        Returns:
            A dict of tensors, `L` being the number of steps taken (<= max_length):
            `tokens` int32 `[batch, L]` (the end token included, then 0), `lengths` int32 `[batch]` (tokens
            up to and including the end token), `scores` float32 `[batch]` (sum of the tokens'
            log-probabilities), `attention` float32 `[batch, L, S]` (row i: the weights over the source
            when token i was chosen; 0 on source padding and after the end).
        """
        max_length = _check_max_length(max_length)
        parts, encoder_outputs, source_mask, states, source = self._start(source)
        batch = tf.shape(encoder_outputs)[0]
        source_steps = tf.shape(encoder_outputs)[1]
        tokens = tf.fill([batch], tf.constant(self.start_id, tf.int32))
        finished = tf.zeros([batch], tf.bool)
        scores = tf.zeros([batch], tf.float32)
        lengths = tf.zeros([batch], tf.int32)
        token_buffer = tf.zeros([batch, max_length], tf.int32)
        attention_buffer = tf.zeros([batch, max_length, source_steps], tf.float32)

        def cond(step: tf.Tensor, _tokens: tf.Tensor, finished: tf.Tensor, *_: Any) -> tf.Tensor:
            return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

        def body(step, tokens, finished, scores, lengths, token_buffer, attention_buffer, *states):
            log_probs, new_states, weights = self._step(parts, tokens, list(states), encoder_outputs, source_mask,
                                                        source)
            chosen = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
            chosen = tf.where(finished, tf.zeros_like(chosen), chosen)
            weights = tf.where(finished[:, None], tf.zeros_like(weights), tf.cast(weights, tf.float32))
            chosen_log_prob = tf.gather(log_probs, chosen, batch_dims=1)
            scores = scores + tf.where(finished, tf.zeros_like(scores), chosen_log_prob)
            lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
            at_step = tf.equal(tf.range(max_length), step)
            token_buffer = tf.where(at_step[None, :], chosen[:, None], token_buffer)
            attention_buffer = tf.where(at_step[None, :, None], weights[:, None, :], attention_buffer)
            finished = tf.logical_or(finished, tf.equal(chosen, self.end_id))
            return (step + 1, chosen, finished, scores, lengths, token_buffer, attention_buffer, *new_states)

        result = tf.while_loop(
            cond,
            body,
            (tf.constant(0), tokens, finished, scores, lengths, token_buffer, attention_buffer, *states),
            maximum_iterations=max_length,
        )
        steps = result[0]
        return {
            "tokens": result[5][:, :steps],
            "lengths": result[4],
            "scores": result[3],
            "attention": result[6][:, :steps, :],
        }

    def beam_search_decode(
        self,
        source: Any,
        beam_width: int = 4,
        max_length: Any = 50,
        length_penalty: float = 0.6,
        coverage_penalty: float = 0.0,
    ) -> dict[str, tf.Tensor]:
        """Beam search: keeps the `beam_width` best hypotheses per source, ranked by length-normalised score.

        The score of a hypothesis is the sum of its tokens' log-probabilities divided by the GNMT length
        penalty `((5 + length) / 6) ** length_penalty`; hypotheses are ranked by it at every step, and a
        hypothesis that emitted `end_id` stays in the beam with a fixed score. With `coverage_penalty`
        (GNMT's beta), an ended hypothesis also loses `beta * sum_j log(min(a_j, 1))`, `a_j` being the
        attention that source piece `j` got over all its steps: one that skipped part of the source ranks
        below one that translated all of it. Stops when every beam ended or after `max_length` steps. With
        `beam_width=1` and no coverage penalty this is greedy decoding.

        Args:
            source: `[batch, S]` int ids, 0-padded.
            beam_width: positive int, hypotheses kept per source.
            max_length: positive int or int scalar tensor, the most tokens generated (end token included).
            length_penalty: alpha >= 0; 0 ranks by plain log-probability (favours short outputs).
            coverage_penalty: beta >= 0; 0 = off.

        Returns:
            As `greedy_decode` for the best hypothesis (`scores` being its score, both penalties included),
            plus `beam_tokens` int32 `[batch, beam_width, L]` and `beam_scores` float32 `[batch, beam_width]`,
            best first.
        """
        beam_width = check_positive_int("beam_width", beam_width)
        alpha = check_decoding_penalty("length_penalty", length_penalty)
        beta = check_decoding_penalty("coverage_penalty", coverage_penalty)
        max_length = _check_max_length(max_length)
        parts, encoder_outputs, source_mask, states, source = self._start(source)
        batch = tf.shape(encoder_outputs)[0]
        source_steps = tf.shape(encoder_outputs)[1]
        vocab = self._arguments["target_vocab_size"]
        width = beam_width

        # Beams live in the batch dimension, source-major: row b * width + k is beam k of source b.
        encoder_outputs = tf.repeat(encoder_outputs, width, axis=0)
        source_mask = tf.repeat(source_mask, width, axis=0)
        source = tf.repeat(source, width, axis=0)
        states = [tf.repeat(s, width, axis=0) for s in states]
        tokens = tf.fill([batch * width], tf.constant(self.start_id, tf.int32))
        # Only beam 0 is live at first, so the first step does not pick the same token `width` times.
        raw_scores = tf.tile(tf.concat([[0.0], tf.fill([width - 1], _NEG)], axis=0)[None, :], [batch, 1])
        finished = tf.zeros([batch, width], tf.bool)
        lengths = tf.zeros([batch, width], tf.int32)
        token_buffer = tf.zeros([batch, width, max_length], tf.int32)
        attention_buffer = tf.zeros([batch, width, max_length, source_steps], tf.float32)
        # A finished beam can only continue with padding, at no cost.
        pad_only = tf.where(tf.equal(tf.range(vocab), 0), 0.0, _NEG)
        ends = tf.equal(tf.range(vocab), self.end_id)
        beam_mask = tf.reshape(source_mask, [batch, width, source_steps])
        offsets = (tf.range(batch) * width)[:, None]

        def cond(step: tf.Tensor, _tokens: tf.Tensor, _raw: tf.Tensor, finished: tf.Tensor, *_: Any) -> tf.Tensor:
            return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

        def body(step, tokens, raw_scores, finished, lengths, _normalised, token_buffer, attention_buffer, *states):
            log_probs, new_states, weights = self._step(parts, tokens, list(states), encoder_outputs, source_mask,
                                                        source)
            log_probs = tf.reshape(log_probs, [batch, width, vocab])
            log_probs = tf.where(finished[:, :, None], pad_only[None, None, :], log_probs)
            weights = tf.reshape(tf.cast(weights, tf.float32), [batch, width, source_steps])
            weights = tf.where(finished[:, :, None], tf.zeros_like(weights), weights)
            candidate_raw = raw_scores[:, :, None] + log_probs
            new_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
            candidate_normalised = candidate_raw / _length_penalty(new_lengths, alpha)[:, :, None]
            if beta:  # on the candidates that end here, ended before or are cut by max_length now
                coverage = tf.reduce_sum(attention_buffer, axis=2) + weights  # all the beam's steps
                penalty = _coverage_penalty(coverage, beam_mask, beta)
                ended = finished[:, :, None] | ends[None, None, :] | tf.equal(step, max_length - 1)
                candidate_normalised += tf.where(ended, penalty[:, :, None], 0.0)
            top_normalised, top = tf.math.top_k(tf.reshape(candidate_normalised, [batch, width * vocab]), k=width)
            parent = top // vocab
            chosen = top % vocab
            raw_scores = tf.gather(tf.reshape(candidate_raw, [batch, width * vocab]), top, batch_dims=1)
            lengths = tf.gather(new_lengths, parent, batch_dims=1)
            finished = tf.logical_or(tf.gather(finished, parent, batch_dims=1), tf.equal(chosen, self.end_id))
            at_step = tf.equal(tf.range(max_length), step)
            token_buffer = tf.where(
                at_step[None, None, :], chosen[:, :, None], tf.gather(token_buffer, parent, batch_dims=1)
            )
            attention_buffer = tf.where(
                at_step[None, None, :, None],
                tf.gather(weights, parent, batch_dims=1)[:, :, None, :],
                tf.gather(attention_buffer, parent, batch_dims=1),
            )
            rows = tf.reshape(parent + offsets, [-1])
            new_states = [tf.gather(s, rows) for s in new_states]
            return (
                step + 1,
                tf.reshape(chosen, [-1]),
                raw_scores,
                finished,
                lengths,
                top_normalised,
                token_buffer,
                attention_buffer,
                *new_states,
            )

        loop_vars = (
            tf.constant(0),
            tokens,
            raw_scores,
            finished,
            lengths,
            tf.zeros([batch, width], tf.float32),
            token_buffer,
            attention_buffer,
            *states,
        )
        result = tf.while_loop(cond, body, loop_vars, maximum_iterations=max_length)
        steps, lengths, normalised = result[0], result[4], result[5]
        beam_tokens = result[6][:, :, :steps]
        # top_k sorted the beams at the last step, so beam 0 is the best.
        return {
            "tokens": beam_tokens[:, 0, :],
            "lengths": lengths[:, 0],
            "scores": normalised[:, 0],
            "attention": result[7][:, 0, :steps, :],
            "beam_tokens": beam_tokens,
            "beam_scores": normalised,
        }


def _tied_logits(embedding: Any, bias: Any) -> Any:
    return lambda hidden: bias(embedding(hidden, reverse=True))


def _word_dropout(parts: dict[str, Any], side: str, embedded: Any, training: Any) -> Any:
    layer = parts[f"{side}_word_dropout"]
    return embedded if layer is None else layer(embedded, training=training)


def _encode(
    parts: dict[str, Any], source: Any, training: Any = None
) -> tuple[Any, Any, list[list[Any]]]:
    """Encoder outputs, source mask and the decoder layers' initial states; symbolic or eager."""
    mask = keras.ops.not_equal(source, 0)
    x = _word_dropout(parts, "source", parts["source_embedding"](source), training)
    initial_states = []
    for index, encoder in enumerate(parts["encoders"]):
        x, *states = encoder(x, mask=mask, training=training)
        if parts["bridges"]:
            half = len(states) // 2  # Bidirectional returns the forward states, then the backward ones
            states = [
                bridge(keras.ops.concatenate([forward, backward], axis=-1))
                for bridge, forward, backward in zip(parts["bridges"][index], states[:half], states[half:], strict=True)
            ]
        initial_states.append(states)
    return x, mask, initial_states


def _decode_teacher_forced(
    parts: dict[str, Any],
    source: Any,
    target_in: Any,
    encoder_outputs: Any,
    source_mask: Any,
    initial_states: list[list[Any]],
    training: Any = None,
) -> Any:
    """Logits of every target step given the true previous tokens."""
    target_mask = keras.ops.not_equal(target_in, 0)
    y = _word_dropout(parts, "target", parts["target_embedding"](target_in), training)
    for decoder, states in zip(parts["decoders"], initial_states, strict=True):
        y = decoder(y, initial_state=states, mask=target_mask, training=training)
    context, weights = parts["attention"](y, encoder_outputs, mask=[target_mask, source_mask])
    if parts["context"] is not None:
        y = parts["context"](keras.ops.concatenate([y, context], axis=-1), initial_state=initial_states[-1],
                             mask=target_mask, training=training)
    hidden = parts["attentional"](keras.ops.concatenate([y, context], axis=-1))
    logits = parts["logits"](parts["output_dropout"](hidden, training=training))
    if parts["lexical_bias"] is not None:
        logits = parts["lexical_bias"]((logits, weights, source, target_in), training=training)
    return logits


def build_seq2seq(
    source_vocab_size: int,
    target_vocab_size: int,
    *,
    embedding_dim: int = 64,
    cell: str = "gru",
    units: int = 64,
    num_layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    attention: str = "additive",
    attention_units: int | None = None,
    start_id: int = 1,
    end_id: int = 2,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    embeddings_initializer: Any = "uniform",
    lexical_bias: bool = False,
    lexical_epsilon: float = 1e-3,
    guided_alignment: float = 0.0,
    word_dropout: float = 0.0,
    context_layer: bool = False,
    tie_embeddings: bool = False,
) -> Seq2Seq:
    """An uncompiled `Seq2Seq` (see its docstring for the arguments), built like the other rnnpipe builders.

    Example:

    >>> from rnnpipe.models import build_seq2seq
    >>> model = build_seq2seq(30, 40, cell="lstm", units=8, num_layers=2, attention="general")
    >>> model.output_shape
    (None, None, 40)
    """
    return Seq2Seq(
        source_vocab_size,
        target_vocab_size,
        embedding_dim=embedding_dim,
        cell=cell,
        units=units,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        attention=attention,
        attention_units=attention_units,
        start_id=start_id,
        end_id=end_id,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        embeddings_initializer=embeddings_initializer,
        lexical_bias=lexical_bias,
        lexical_epsilon=lexical_epsilon,
        guided_alignment=guided_alignment,
        word_dropout=word_dropout,
        context_layer=context_layer,
        tie_embeddings=tie_embeddings,
    )
