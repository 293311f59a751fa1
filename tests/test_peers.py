"""Peers scored beside the model (evaluator.metrics.peers): fit on the train split, scored on the same examples
overall and per slice, cached on the data, and a gate that can require the model to beat them."""

from __future__ import annotations

import numpy as np
import pytest

from rnnpipe.components.evaluator import EvalContext, gate
from rnnpipe.components.metrics import evaluate_classification
from rnnpipe.components.peers import text_classifier_predictions

WORDS = {0: ["awful", "bad", "dull", "boring"], 1: ["great", "good", "lovely", "fun"]}


def sentences(n: int, seed: int) -> list[dict]:
    """A sentiment word among neutral ones decides the label; the source is a slice."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(0, 2))
        words = [*rng.choice(["the", "film", "was", "plot", "and", "a"], size=4), rng.choice(WORDS[label])]
        rows.append({"text": " ".join(rng.permutation(words)), "label": label, "source": ["movie", "tweet"][i % 2]})
    return rows


def test_a_peer_learns_on_train_predicts_the_test_texts_and_is_cached(tmp_path) -> None:
    train, test = sentences(120, 0), sentences(40, 1)
    pairs, texts = [(r["text"], r["label"]) for r in train], [r["text"] for r in test]
    messages: list[str] = []
    first = text_classifier_predictions("tfidf_logreg", pairs, texts, messages.append, cache=tmp_path)
    assert (first == [r["label"] for r in test]).mean() > 0.9
    again = text_classifier_predictions("tfidf_logreg", pairs, texts, messages.append, cache=tmp_path)
    assert np.array_equal(first, again) and "cached" in messages[-1] and "cached" not in messages[0]
    other = text_classifier_predictions("tfidf_logreg", pairs[:-1], texts, messages.append, cache=tmp_path)
    assert "cached" not in messages[-1] and len(list(tmp_path.glob("tfidf_logreg-*.json"))) == 2
    assert len(other) == len(texts)


def test_peers_are_scored_overall_and_per_slice_and_the_gate_can_require_beating_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RNNPIPE_CACHE", str(tmp_path / "cache"))
    train, test = sentences(200, 2), sentences(60, 3)
    truth = np.array([r["label"] for r in test])
    wrong = truth.copy()
    wrong[::4] = 1 - wrong[::4]  # the "model" misses a quarter: the peers, which learn the words, beat it
    predictions = {"label_id": wrong, "probabilities": np.eye(2)[wrong]}
    config = {"label_key": "label", "class_names": ["negative", "positive"], "slice_keys": ["source"],
              "peers": ["tfidf_logreg", "tfidf_svm"], "text_key": "text"}
    evaluation = evaluate_classification(EvalContext(test, predictions, config, tmp_path, "unused",
                                                     lambda msg: None, train, batch_size=16))
    overall = evaluation["overall"]
    assert overall["model"]["accuracy"] == pytest.approx(0.75)
    for name in ("peer/tfidf_logreg", "peer/tfidf_svm"):
        assert overall[name]["accuracy"] > 0.9 and overall[name]["count"] == 60
        assert sum(evaluation["slices"][f"source:{s}"][name]["count"] for s in ("movie", "tweet")) == 60
    params = {"thresholds": {}, "primary_metric": "accuracy", "higher_is_better": True, "must_beat_baseline": False,
              "must_beat_peers": True}
    assert gate(evaluation, params) == [
        f"accuracy 0.7500 does not beat the peer tfidf_logreg {overall['peer/tfidf_logreg']['accuracy']:.4f}",
        f"accuracy 0.7500 does not beat the peer tfidf_svm {overall['peer/tfidf_svm']['accuracy']:.4f}"]
    assert gate(evaluation, {**params, "must_beat_peers": False}) == []


def test_an_unknown_peer_or_a_missing_text_key_is_named(tmp_path) -> None:
    test = sentences(4, 4)
    predictions = {"label_id": np.zeros(4, int), "probabilities": np.ones((4, 2)) / 2}
    base = {"label_key": "label", "class_names": ["negative", "positive"]}
    for extra, message in (({"peers": ["tfidf_forest"], "text_key": "text"}, r"unknown peer\(s\) \['tfidf_forest'\]"),
                           ({"peers": ["tfidf_svm"]}, "needs evaluator.metrics.text_key")):
        with pytest.raises(ValueError, match=message):
            evaluate_classification(EvalContext(test, predictions, {**base, **extra}, tmp_path, "unused",
                                                lambda msg: None, test))


def tagged_sentences(n: int, seed: int) -> list[dict]:
    """The tag follows the suffix (-ler NOUN, -di VERB, else ADJ), so unseen words are taggable by their ending."""
    rng = np.random.default_rng(seed)
    stems = ["".join(rng.choice(list("abcdefgkmnprstuvyz"), size=4)) for _ in range(300)]
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(int(rng.integers(3, 7))):
            suffix, tag = [("ler", "NOUN"), ("di", "VERB"), ("", "ADJ")][int(rng.integers(0, 3))]
            tokens.append(str(rng.choice(stems)) + suffix)
            tags.append(tag)
        rows.append({"tokens": tokens, "tags": tags, "text": " ".join(tokens), "source": "web"})
    return rows


def test_the_crf_peer_tags_unseen_words_by_their_affixes_where_the_most_frequent_tag_cannot(tmp_path,
                                                                                          monkeypatch) -> None:
    from rnnpipe.pipelines.tagging.metrics import evaluate_tagging

    monkeypatch.setenv("RNNPIPE_CACHE", str(tmp_path / "cache"))
    train, test = tagged_sentences(150, 5), tagged_sentences(40, 6)
    width = max(len(r["tokens"]) for r in test)

    def padded(rows: list[list[str]]) -> np.ndarray:
        return np.array([[t.encode() for t in row] + [b""] * (width - len(row)) for row in rows], dtype=object)

    served = {"tokens": padded([r["tokens"] for r in test]), "tags": padded([r["tags"] for r in test]),
              "length": np.array([len(r["tokens"]) for r in test])}
    evaluation = evaluate_tagging(EvalContext(test, served, {"peers": ["crf"]}, tmp_path, "unused",
                                              lambda msg: None, train))
    crf, baseline = evaluation["overall"]["peer/crf"], evaluation["overall"]["baseline"]
    assert crf["count"] == baseline["count"] == sum(len(r["tokens"]) for r in test)
    assert crf["oov_accuracy"] > 0.95 > baseline["oov_accuracy"]
    assert "peer/crf" in evaluation["slices"]["source:web"]
