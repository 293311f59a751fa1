"""The EmbeddingPretrainer: WordNet's corpus reader, word2vec on a corpus in the Transform's ids, the Trainer
starting its embedding from the vectors, and the step's cache key following the corpus file's content."""

from __future__ import annotations

from pathlib import Path

import mlflow_store
import numpy as np
import pytest
from executions import latest as _latest
from test_sentiment_e2e import recorded_metrics

from rnnpipe import corpora
from rnnpipe.artifacts import TransformGraph, WordEmbeddings
from rnnpipe.cli import main
from rnnpipe.components.embedding_pretrainer import corpus_lines
from rnnpipe.errors import ConfigError, DataError

SAMPLE = Path(__file__).resolve().parent / "data" / "sentiment_sample.jsonl"
TINY = ["--set", f"data.path={SAMPLE}", "--set", "trainer.epochs=1", "--set", "transform.min_frequency=1",
        "--set", "model.units=8", "--set", "model.embedding_dim=16", "--set", "evaluator.must_beat_baseline=false",
        "--set", "evaluator.thresholds={}", "--set", "evaluator.must_beat_peers=false",
        "--set", "trainer.gradient_diagnostics=false", "--set", "trainer.ensemble=1"]
# Two groups of words that the corpus only ever shows among their own group's context words.
GROUPS = (("good", "great"), ("bad", "film"))


def latest(work: Path, step: str) -> Path:
    return _latest(work, step, app="sentiment")



def test_wordnet_sentences_are_each_gloss_part_and_the_synsets_words() -> None:
    data = [
        "  1 This software and database is being provided to you, the LICENSEE, by  \n",
        '00001740 00 a 01 able 0 005 = 05207437 n 0000 | (usually followed by `to\') having the necessary means; '
        '"able to swim"; "she was able to program her computer"  \n',
        "00002098 00 s 02 unable(p) 0 not_able 0 000 | lacking necessary means  \n",
    ]
    assert list(corpora.wordnet_sentences(data)) == [
        "(usually followed by `to') having the necessary means", "able to swim",
        "she was able to program her computer", "able",
        "lacking necessary means", "unable, not able"]


def test_a_corpus_is_a_named_one_or_a_file_and_bad_bytes_name_their_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"corpus '\S*absent.txt': no such file.*\['wordnet'\]"):
        corpora.corpus_file(str(tmp_path / "absent.txt"))
    bad = tmp_path / "corpus.txt"
    bad.write_bytes(b"a fine line\n\n  \nna\xefve\n")
    with pytest.raises(DataError, match=r"corpus.txt:4: not valid UTF-8 at byte offset 18"):
        list(corpus_lines(bad))
    bad.write_bytes(b"\xef\xbb\xbfa fine line\n\n  \nnaive\n")
    assert list(corpus_lines(bad)) == ["a fine line", "naive"]  # no BOM, no blank lines


def test_the_trainer_starts_the_named_layers_rows_and_says_why_not_for_another_width(tmp_path: Path) -> None:
    import keras

    from rnnpipe.components.training import assign_embeddings
    from rnnpipe.models import build_sequence_classifier

    model = build_sequence_classifier(10, 2, embedding_dim=4, units=4)
    before = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings).copy()
    vectors = np.arange(8, dtype="float32").reshape(2, 4)
    WordEmbeddings.write(tmp_path, np.array([2, 7]), vectors, {"layer": "embedding", "corpus": "c", "corpus_tokens": 9})
    rows, message = assign_embeddings(model, WordEmbeddings.read(tmp_path))
    after = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
    assert rows == 2 and "2 of 10 rows" in message
    np.testing.assert_array_equal(after[[2, 7]], vectors)
    np.testing.assert_array_equal(np.delete(after, [2, 7], axis=0), np.delete(before, [2, 7], axis=0))

    WordEmbeddings.write(tmp_path, np.array([2]), np.ones((1, 3), "float32"), {"layer": "embedding"})
    assert assign_embeddings(model, WordEmbeddings.read(tmp_path)) == (
        0, "pre-trained vectors not used: they are 3-d and the embedding 'embedding' is 4-d; training it from a "
           "random start")
    WordEmbeddings.write(tmp_path, np.array([2]), np.ones((1, 4), "float32"), {"layer": "emb"})
    with pytest.raises(ConfigError, match="the model has no layer 'emb'"):
        assign_embeddings(model, WordEmbeddings.read(tmp_path))


def _corpus(contexts: tuple[list[str], list[str]], lines: int = 1500) -> str:
    rng = np.random.default_rng(0)
    out = []
    for i in range(lines):
        group = i % 2
        words = [*rng.choice(contexts[group], 3), rng.choice(GROUPS[group]), *rng.choice(contexts[group], 3)]
        out.append(" ".join(words))
    return "\n".join(out) + "\n"


def _vector(ids: np.ndarray, vectors: np.ndarray, token_id: int) -> np.ndarray:
    v = vectors[list(ids).index(token_id)]
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("pretrain")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Context words that the Transform's vocabulary holds: the sample's most frequent words.
    import json
    from collections import Counter

    words = Counter(w for line in SAMPLE.open() for w in json.loads(line)["text"].lower().split()
                    if w.isalpha() and w not in sum(GROUPS, ()))
    contexts = [w for w, _ in words.most_common(80)]
    corpus = work / "corpus.txt"
    corpus.write_text(_corpus((contexts[:40], contexts[40:])))
    args = ["run", "sentiment", *TINY, "--set", f"embedding_pretrainer.corpus={corpus}"]
    assert main(args) == 0
    vocabulary = [w.decode() for w in TransformGraph.load(
        latest(work, "Transform") / "transform_graph").vocabulary_by_name("tokens")]
    assert set(contexts) <= set(vocabulary)
    yield {"work": work, "args": args, "corpus": corpus, "vocabulary": vocabulary}
    mp.undo()


def test_pretrained_vectors_place_words_by_their_contexts_and_start_the_trainers_embedding(pretrained: dict) -> None:
    work, vocabulary = pretrained["work"], pretrained["vocabulary"]
    ids, vectors, info = WordEmbeddings.read(latest(work, "EmbeddingPretrainer") / "embeddings")
    assert vectors.shape == (len(ids), 16) and info["layer"] == "embedding" and info["corpus_sentences"] == 1500
    assert ids.min() >= 1 and ids.max() <= len(vocabulary) + 1  # the Transform's ids: 0 is padding, +1 the OOV
    (a1, a2), (b1, _) = [[_vector(ids, vectors, vocabulary.index(w) + 1) for w in group] for group in GROUPS]
    assert a1 @ a2 > a1 @ b1 + 0.3  # words of one group's contexts are near, those of the other's far
    assert recorded_metrics(work, "Trainer")["pretrained_embedding_rows"] == len(ids)


def test_the_same_inputs_give_the_same_vectors(pretrained: dict, tmp_path: Path) -> None:
    from rnnpipe.components.embedding_pretrainer import run_embedding_pretrainer
    from rnnpipe.context import ExecutionContext
    from rnnpipe.dsl import Artifact

    work = pretrained["work"]
    transform = latest(work, "Transform")
    inputs = {name: Artifact(name, "", str(transform / name)) for name in ("transform_graph", "transformed_examples")}
    params = {"task": "rnnpipe.pipelines.sentiment.model:TASK", "corpus": str(pretrained["corpus"]),
              "cache_dir": None, "layer": "embedding", "input": None, "dim": 16, "window": 5, "min_count": 2,
              "negative": 10, "epochs": 5, "seed": 1}
    ctx = ExecutionContext("sentiment", "EmbeddingPretrainer", 0, tmp_path, [], "default", None)
    (tmp_path / "again").mkdir()
    run_embedding_pretrainer(inputs, {"embeddings": Artifact("embeddings", "", str(tmp_path / "again"))}, params, ctx)
    first = WordEmbeddings.read(latest(work, "EmbeddingPretrainer") / "embeddings")
    again = WordEmbeddings.read(tmp_path / "again")
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_an_edited_corpus_trains_the_vectors_and_the_model_again(pretrained: dict,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(pretrained["args"]) == 0
    assert "executed:   nothing" in capsys.readouterr().out
    with pretrained["corpus"].open("a") as fh:
        fh.write("the movie was good\n")
    assert main(pretrained["args"]) == 0
    assert "executed:   EmbeddingPretrainer, Trainer," in capsys.readouterr().out
