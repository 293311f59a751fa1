"""The translation model: rnnpipe's Seq2Seq (bidirectional encoder, attention, teacher forcing) over the
WordPiece ids of features.py, exported with the decoding loop inside the SavedModel:

* ``serving_default``: ``source`` (raw sentences) -> ``translation`` (detokenized strings) and
  ``truncated`` (the source had more pieces than the model reads: it was cut, and the server logs a
  warning), decoded greedily or by beam search as ``model.decode`` says;
* ``greedy`` and ``beam``: the same with that decoding, whatever the default;
* ``attention``: the greedy translation with its ``source_pieces``, ``target_pieces`` and the
  ``attention`` weights ``[batch, target pieces, source pieces]`` (for heatmaps).

An empty source sentence translates to an empty string.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask
from rnnpipe.errors import ConfigError
from rnnpipe.models import build_seq2seq, check_decoding_penalty, keep_top_k

from .features import (
    END_ID,
    IBM1_LEXICON,
    SOURCE_IDS,
    SOURCE_KEY,
    SOURCE_LENGTH,
    SOURCE_VOCABULARY,
    TARGET_IN,
    TARGET_OUT,
    TARGET_VOCABULARY,
    UNK_ID,
    read_lexicon,
)

DECODERS = ("greedy", "beam")
# Settings of the exported decoding, kept beside the Keras model (they are not Seq2Seq arguments).
DECODING_DEFAULTS = {"decode": "greedy", "beam_width": 4, "length_penalty": 0.6, "coverage_penalty": 0.0,
                     "max_target_tokens": 48}
# The lexicon's settings (Seq2Seq takes the table, not how it was made).
LEXICON_DEFAULTS = {"lexicon_top_k": 10}


def _asset(tft_output: Any, name: str) -> Path:
    path = Path(tft_output.transform_savedmodel_dir) / "assets" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the transform graph has no asset {name}; re-run the Transform")
    return path


def vocabulary(tft_output: Any, name: str) -> list[str]:
    """A WordPiece vocabulary of the transform graph (an asset file), one piece per id."""
    return _asset(tft_output, name).read_text(encoding="utf-8").splitlines()


def piece_lexicon(tft_output: Any, source_size: int, target_size: int, top_k: int) -> Any:
    """The ``[source_size, target_size]`` table of ``models.LexicalBias``: the IBM Model 1 lexicon the Transform
    learnt on the train split (an asset of the transform graph), the ``top_k`` likeliest target pieces a row."""
    return keep_top_k(read_lexicon(_asset(tft_output, IBM1_LEXICON), source_size, target_size), top_k)


def build_model(hparams: dict, tft_output: Any) -> keras.Model:
    settings = {k: hparams.get(k, v) for k, v in DECODING_DEFAULTS.items()}
    if settings["decode"] not in DECODERS:
        raise ConfigError(f"model.decode must be one of {', '.join(DECODERS)}; got {settings['decode']!r}")
    # The decoder's own check, run here, before training, rather than when the trained model is exported.
    for key in ("length_penalty", "coverage_penalty"):
        try:
            check_decoding_penalty(key, settings[key])
        except ValueError:
            raise ConfigError(f"model.{key} must be a finite number >= 0; got {settings[key]!r}") from None
    top_k = hparams.get("lexicon_top_k", LEXICON_DEFAULTS["lexicon_top_k"])
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"model.lexicon_top_k must be a positive integer; got {top_k!r}")
    arguments = {k: v for k, v in hparams.items() if k not in DECODING_DEFAULTS and k not in LEXICON_DEFAULTS}
    # Unit-variance embeddings: with Keras' default (+-0.05) and thousands of pieces the decoder stalls at
    # the unigram loss (see Seq2Seq's embeddings_initializer).
    arguments.setdefault("embeddings_initializer", keras.initializers.RandomNormal(stddev=1.0))
    # +1: the tokenizer's lookup table gives out-of-vocabulary pieces one more id (never met: [UNK] covers them).
    sizes = len(vocabulary(tft_output, SOURCE_VOCABULARY)) + 1, len(vocabulary(tft_output, TARGET_VOCABULARY)) + 1
    model = build_seq2seq(*sizes, **arguments)
    if arguments.get("lexical_bias"):
        model.get_layer("lexical_bias").set_table(piece_lexicon(tft_output, *sizes, top_k))
    model.decoding = dict(settings)
    return model


def _dense(x: Any) -> tf.Tensor:
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    return tf.cast(x, tf.int32)


def model_inputs(features: dict) -> dict[str, tf.Tensor]:
    return {"source": _dense(features[SOURCE_IDS]), "target_in": _dense(features[TARGET_IN])}


def targets(features: dict) -> tf.Tensor:
    return _dense(features[TARGET_OUT])


def sequence_length(x: dict) -> tf.Tensor:
    return tf.maximum(tf.shape(x["source"])[0], tf.shape(x["target_in"])[0])


def postprocess(logits: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    return {"logits": logits}


def detokenize(pieces: tf.RaggedTensor) -> tf.Tensor:
    """[batch, (pieces)] strings -> [batch] sentences: continuation pieces (##) joined to their word,
    punctuation attached the way Spanish and English write it."""
    text = tf.strings.reduce_join(pieces, axis=1, separator=" ")
    text = tf.strings.regex_replace(text, r"(^| )##", "")
    text = tf.strings.regex_replace(text, r" ([.,;:!?)\]»])", r"\1")
    return tf.strings.regex_replace(text, r"([¿¡(\[«]) ", r"\1")


def _encode_sources(transform: Any, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Source ids ``[batch, >= 1]`` (0-padded), piece counts before the cut, and whether each row was cut."""
    features = transform({SOURCE_KEY: text})
    ids = _dense(features[SOURCE_IDS])
    ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])  # an all-empty batch keeps one column
    length = tf.cast(tf.reshape(features[SOURCE_LENGTH], [-1]), tf.int32)
    # A row longer than the widest kept row lost pieces: the transform cuts at max_source_tokens.
    return ids, length, length > tf.reduce_max(tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1))


def _warn_if_truncated(truncated: tf.Tensor) -> tf.Tensor:
    def warn() -> tf.Tensor:
        message = tf.print("rnnpipe translation: WARNING:", tf.reduce_sum(tf.cast(truncated, tf.int32)),
                           "source sentence(s) longer than the model's maximum were truncated",
                           output_stream=sys.stderr)
        with tf.control_dependencies([message]):
            return tf.identity(truncated)

    return tf.cond(tf.reduce_any(truncated), warn, lambda: tf.identity(truncated))


def _decode(model: Any, ids: tf.Tensor, method: str) -> dict[str, tf.Tensor]:
    settings = model.decoding
    # Translations are seldom more than twice as long as their source: stop there rather than at the cap.
    max_length = tf.minimum(settings["max_target_tokens"] + 1, 2 * tf.shape(ids)[1] + 10)
    if method == "beam":
        return model.beam_search_decode(ids, beam_width=settings["beam_width"], max_length=max_length,
                                        length_penalty=settings["length_penalty"],
                                        coverage_penalty=settings["coverage_penalty"])
    return model.greedy_decode(ids, max_length=max_length)


def _translate(model: Any, transform: Any, inputs: dict, tft_output: Any, method: str) -> dict[str, tf.Tensor]:
    text = inputs[SOURCE_KEY]
    ids, length, truncated = _encode_sources(transform, text)
    truncated = _warn_if_truncated(truncated)
    decoded = _decode(model, ids, method)
    # Each row stops at twice its own length plus 10 pieces, not its batch's: a sentence translates the
    # same whatever it is batched with.
    kept = tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1)
    tokens = decoded["tokens"]
    tokens = tf.where(tf.range(tf.shape(tokens)[1])[None, :] < (2 * kept + 10)[:, None], tokens, 0)
    kept = tf.ragged.boolean_mask(tokens, tokens > UNK_ID)  # drops padding, end and unknown pieces
    pieces = tf.gather(tf.constant(vocabulary(tft_output, TARGET_VOCABULARY)), kept)
    translation = tf.where(tf.equal(length, 0), tf.constant(""), detokenize(pieces))
    return {"translation": translation, "truncated": truncated, "decoded": decoded, "ids": ids, "tokens": tokens,
            "length": length}


def serve_configured(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    out = _translate(model, transform, inputs, tft_output, model.decoding["decode"])
    return {"translation": out["translation"], "truncated": out["truncated"]}


def serve_greedy(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    out = _translate(model, transform, inputs, tft_output, "greedy")
    return {"translation": out["translation"], "truncated": out["truncated"]}


def serve_beam(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    out = _translate(model, transform, inputs, tft_output, "beam")
    return {"translation": out["translation"], "truncated": out["truncated"]}


def serve_attention(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    out = _translate(model, transform, inputs, tft_output, "greedy")
    tokens, ids = out["tokens"], out["ids"]
    target_pieces = tf.where(tokens > 0, tf.gather(tf.constant(vocabulary(tft_output, TARGET_VOCABULARY)), tokens), "")
    source_pieces = tf.where(ids > 0, tf.gather(tf.constant(vocabulary(tft_output, SOURCE_VOCABULARY)), ids), "")
    return {"translation": out["translation"], "truncated": out["truncated"], "source_pieces": source_pieces,
            "target_pieces": target_pieces, "attention": out["decoded"]["attention"],
            "target_length": out["decoded"]["lengths"]}


_RAW = (SOURCE_KEY,)

TASK = TrainingTask(
    label_key=TARGET_OUT,
    serving_features=_RAW,
    build_model=build_model,
    model_inputs=model_inputs,
    targets=targets,
    postprocess=postprocess,
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    metrics=(),
    sequence_length=sequence_length,
    serve=Signature(serve_configured, raw_features=_RAW),
    extra_signatures={"greedy": Signature(serve_greedy, raw_features=_RAW),
                      "beam": Signature(serve_beam, raw_features=_RAW),
                      "attention": Signature(serve_attention, raw_features=_RAW)},
)

__all__ = ["END_ID", "TASK", "build_model", "detokenize", "vocabulary"]
