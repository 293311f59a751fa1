"""Peers: the non-recurrent models a user would otherwise pick, fit on the train split and scored by the Evaluator
on the same split as the model (``evaluator.metrics.peers``).

Each peer comes from a well-kept library (scikit-learn pipelines, sklearn-crfsuite), not a hand-written
learner. Its test predictions are cached under the user's cache folder (``peers/``), keyed on the peer, the
scikit-learn version and the exact train and test data, so a re-run that trains another model on the same data
scores the peers for free.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnpipe.data_cache import cache_dir

PEER_VERSION = 1  # bump when a peer's definition changes: cached predictions of the old one are not reused


def _tfidf_features() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    # Word 1-2-grams and character 2-5-grams within words: the strong linear text baseline.
    return FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
    ])


def tfidf_logreg() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_tfidf_features(), LogisticRegression(C=4.0, max_iter=2000))


def tfidf_svm() -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return make_pipeline(_tfidf_features(), LinearSVC(C=0.5))


TEXT_CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "tfidf_logreg": tfidf_logreg,  # TF-IDF word 1-2 + char 2-5 grams, logistic regression
    "tfidf_svm": tfidf_svm,  # the same features, a linear SVM
}


def check_peers(names: Sequence[str], known: dict[str, Callable[[], Any]]) -> list[str]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"evaluator.metrics.peers must be a list of peer names. Received: {names!r}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"evaluator.metrics.peers: unknown peer(s) {unknown}; the known ones are {sorted(known)}")
    return list(names)


def _cached(name: str, data: Any, predict: Callable[[], Any], log: Callable[[str], None],
            cache: Path | None) -> Any:
    """``predict()``'s JSON-able result, kept under the cache keyed on the peer, its libraries and ``data``."""
    import sklearn

    digest = hashlib.sha256(json.dumps([name, PEER_VERSION, sklearn.__version__, data]).encode()).hexdigest()[:24]
    folder = cache or cache_dir("peers")
    path = folder / f"{name}-{digest}.json"
    if path.exists():
        log(f"peer {name}: predictions cached ({path.name})")
        return json.loads(path.read_text(encoding="utf-8"))
    result = predict()
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".json", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    os.replace(tmp, path)  # a reader never sees a half-written file
    return result


def text_classifier_predictions(name: str, train: Sequence[tuple[str, int]], test: Sequence[str],
                                log: Callable[[str], None] = print, cache: Path | None = None) -> np.ndarray:
    """Class ids the peer ``name`` (one of TEXT_CLASSIFIERS) predicts for ``test`` texts after fitting on the
    ``train`` (text, class id) pairs; from the cache when the same peer saw the same data before."""
    def predict() -> list[int]:
        model = TEXT_CLASSIFIERS[name]()
        model.fit([text for text, _ in train], np.array([label for _, label in train]))
        log(f"peer {name}: fit on {len(train)} train examples, predicting {len(test)}")
        return [int(c) for c in model.predict(list(test))] if test else []

    data = [[[text, int(label)] for text, label in train], list(test)]
    return np.asarray(_cached(name, data, predict, log, cache), dtype=np.int64)


def _token_features(tokens: Sequence[str], i: int) -> dict[str, Any]:
    """The usual CRF features of token i: the word, its shape and affixes, and its neighbours'."""
    word = tokens[i]
    shape = "".join("X" if c.isupper() else "x" if c.isalpha() else "d" if c.isdigit() else c for c in word)
    features: dict[str, Any] = {
        "bias": 1.0, "lower": word.lower(), "suffix2": word[-2:].lower(), "suffix3": word[-3:].lower(),
        "suffix4": word[-4:].lower(), "prefix2": word[:2].lower(), "prefix3": word[:3].lower(),
        "title": word.istitle(), "upper": word.isupper(), "digit": any(c.isdigit() for c in word),
        "punct": not any(c.isalnum() for c in word), "shape": shape[:6], "length": min(len(word), 10),
    }
    for offset in (-2, -1, 1, 2):
        j = i + offset
        if 0 <= j < len(tokens):
            features[f"{offset}:lower"] = tokens[j].lower()
            features[f"{offset}:suffix3"] = tokens[j][-3:].lower()
            features[f"{offset}:title"] = tokens[j].istitle()
        else:
            features[f"{offset}:edge"] = True
    return features


def crf_tagger_predictions(train: Sequence[tuple[Sequence[str], Sequence[str]]], test: Sequence[Sequence[str]],
                           log: Callable[[str], None] = print, cache: Path | None = None) -> list[list[str]]:
    """The tags a linear-chain CRF (sklearn-crfsuite, L-BFGS with L1 and L2) fit on the ``train`` (tokens, tags)
    sentences predicts for each ``test`` sentence; from the cache when it saw the same data before."""
    def predict() -> list[list[str]]:
        import sklearn_crfsuite

        crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.05, max_iterations=150,
                                   all_possible_transitions=True)
        crf.fit([[_token_features(tokens, i) for i in range(len(tokens))] for tokens, _ in train],
                [list(tags) for _, tags in train])
        log(f"peer crf: fit on {len(train)} train sentences, predicting {len(test)}")
        return [list(crf.predict_single([_token_features(s, i) for i in range(len(s))])) if s else []
                for s in test]

    data = [[list(tokens), list(tags)] for tokens, tags in train], [list(s) for s in test]
    return _cached("crf", data, predict, log, cache)
