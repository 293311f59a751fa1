"""EmbeddingPretrainer: word2vec (gensim's skip-gram) on an unlabelled corpus and the train split's text, in the
Transform's token ids, so that the Trainer starts the model's embedding from vectors that already place words
by the company they keep: a small labelled set then needs to teach less (README "Pre-trained embeddings").

The corpus runs through the very transform graph that serving uses, so its tokens are the model's ids: a word
outside the Transform's vocabulary becomes its OOV id, as it would in a request. Id 0 is padding (the masked
embedding's convention) and gets no vector.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from typing import Any

from rnnpipe import corpora
from rnnpipe.artifacts import Examples, TransformGraph, WordEmbeddings
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import ConfigError, DataError

from .example_gen import text_lines

BATCH = 4096  # corpus lines per call of the transform graph


def _stable_hash(text: str) -> int:
    # gensim seeds each word's starting vector with hash(word); Python's str hash differs per process.
    return zlib.crc32(text.encode("utf-8"))


def _rows(inputs: Any, key: str | None) -> Iterator[list[str]]:
    """The token ids among the model's inputs (the ``key`` one of several), each row (ragged, or dense with 0 as
    padding) as a gensim sentence of id strings."""
    import tensorflow as tf

    if isinstance(inputs, dict):
        if key not in inputs:
            raise ConfigError(f"embedding_pretrainer.input: the model's inputs are {sorted(inputs)}; name the one "
                              f"that holds the token ids (got {key!r})")
        inputs = inputs[key]
    rows = inputs.to_list() if isinstance(inputs, tf.RaggedTensor) else inputs.numpy().tolist()
    for row in rows:
        tokens = [str(i) for i in row if i != 0]
        if tokens:
            yield tokens


def corpus_lines(path: Any) -> Iterator[str]:
    """The non-blank lines of a UTF-8 corpus file, read lazily; bad bytes are a DataError naming file and line."""
    return filter(None, (line.strip() for _, line in text_lines(path)))


def _corpus_sentences(path: Any, transform: Any, task: Any, feature: str, key: str | None
                      ) -> Iterator[list[str]]:
    import tensorflow as tf

    lines = corpus_lines(path)
    while batch := list(itertools.islice(lines, BATCH)):
        yield from _rows(task.model_inputs(transform({feature: tf.constant(batch)})), key)


def _train_sentences(examples: Artifact, tft_output: Any, task: Any, key: str | None) -> Iterator[list[str]]:
    import tensorflow as tf

    spec = tft_output.transformed_feature_spec()
    files = tf.io.gfile.glob(Examples.file_pattern(examples, "train"))
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(BATCH):
        yield from _rows(task.model_inputs(tf.io.parse_example(serialized, spec)), key)


def run_embedding_pretrainer(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                             ctx: ExecutionContext) -> dict:
    import numpy as np
    from gensim.models import Word2Vec

    task = Ref(params["task"]).resolve()  # imports the application's ops (tensorflow-text) that the graph needs
    if len(task.serving_features) != 1:
        raise ConfigError(f"embedding_pretrainer: the model must read one text feature, but it reads "
                          f"{list(task.serving_features)}; set embedding_pretrainer.corpus: null")
    tft_output = TransformGraph.load(inputs["transform_graph"])
    path = corpora.corpus_file(params["corpus"], params["cache_dir"])
    corpus = list(_corpus_sentences(path, tft_output.transform_features_layer(), task, task.serving_features[0],
                                    params["input"]))
    if not corpus:
        raise DataError(f"{path}: the corpus has no tokens after the Transform; give it text, one sentence per line")
    train = list(_train_sentences(inputs["transformed_examples"], tft_output, task, params["input"]))
    ctx.log(f"word2vec on {len(corpus):,} corpus sentences ({path.name}) and {len(train):,} train sentences")
    # One worker: with more, gensim's result depends on thread timing, and the same key must give the same vectors.
    w2v = Word2Vec(corpus + train, vector_size=params["dim"], window=params["window"], min_count=params["min_count"],
                   sg=1, negative=params["negative"], epochs=params["epochs"], seed=params["seed"], workers=1,
                   hashfxn=_stable_hash)
    keys = w2v.wv.index_to_key
    ids = np.array([int(k) for k in keys], dtype="int64")
    tokens = sum(map(len, corpus))
    WordEmbeddings.write(outputs["embeddings"], ids, w2v.wv.vectors.astype("float32"), {
        "layer": params["layer"], "dim": params["dim"], "corpus": params["corpus"],
        "corpus_sentences": len(corpus), "corpus_tokens": tokens, "train_sentences": len(train)})
    return {"ids": len(ids), "corpus_sentences": len(corpus), "corpus_tokens": tokens}


class EmbeddingPretrainer(Component):
    INPUTS = {"transform_graph": TransformGraph.TYPE, "transformed_examples": Examples.TYPE}
    OUTPUTS = {"embeddings": WordEmbeddings.TYPE}
    PARAMETERS = {
        "task": Param(Ref, doc="'module:TASK', a TrainingTask whose model reads one text feature"),
        "corpus": Param(str, doc=f"a named corpus {list(corpora.NAMED)} or a UTF-8 text file, one sentence a line"),
        "corpus_sha256": Param((str, type(None)), None,
                               doc="a corpus file's content hash (the cache key: an edited file trains again)"),
        "cache_dir": Param((str, type(None)), None, doc="where named corpora are fetched (data.cache_dir)"),
        "layer": Param(str, "embedding", doc="the model's embedding layer that the vectors start"),
        "input": Param((str, type(None)), None, doc="which of the model's inputs holds the token ids, when it "
                                                     "takes a dict of them (null: it takes one tensor)"),
        "dim": Param(int, min=1, doc="the vectors' size: the layer's output size"),
        "window": Param(int, 5, min=1),
        "min_count": Param(int, 2, min=1, doc="ids seen fewer times keep the layer's random start"),
        "negative": Param(int, 10, min=1, doc="negative samples per positive one"),
        "epochs": Param(int, 5, min=1),
        "seed": Param(int, 1, min=0, max=2**32 - 1),
    }
    executor = staticmethod(run_embedding_pretrainer)
