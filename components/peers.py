"""Peers: the non-recurrent models a user would otherwise pick, fit on the train split and scored by the Evaluator
on the same split as the model (``evaluator.metrics.peers``).

Each peer is a scikit-learn pipeline, not a hand-written learner. Its test predictions are cached under the
user's cache folder (``peers/``), keyed on the peer, the scikit-learn version and the exact train and test data,
so a re-run that trains another model on the same data scores the peers for free.
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


def _key(name: str, train: Sequence[tuple[str, int]], test: Sequence[str]) -> str:
    import sklearn

    digest = hashlib.sha256(json.dumps([name, PEER_VERSION, sklearn.__version__]).encode())
    for text, label in train:
        digest.update(f"{label}\t{text}\n".encode())
    digest.update(b"\0test\0")
    for text in test:
        digest.update(f"{text}\n".encode())
    return digest.hexdigest()[:24]


def text_classifier_predictions(name: str, train: Sequence[tuple[str, int]], test: Sequence[str],
                                log: Callable[[str], None] = print, cache: Path | None = None) -> np.ndarray:
    """Class ids the peer ``name`` (one of TEXT_CLASSIFIERS) predicts for ``test`` texts after fitting on the
    ``train`` (text, class id) pairs; from the cache when the same peer saw the same data before."""
    folder = cache or cache_dir("peers")
    path = folder / f"{name}-{_key(name, train, test)}.npy"
    if path.exists():
        log(f"peer {name}: predictions cached ({path.name})")
        return np.load(path)
    model = TEXT_CLASSIFIERS[name]()
    model.fit([text for text, _ in train], np.array([label for _, label in train]))
    predicted = np.asarray(model.predict(list(test)), dtype=np.int64) if test else np.zeros(0, np.int64)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".npy", dir=folder)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, predicted)
    os.replace(tmp, path)  # a reader never sees a half-written file
    log(f"peer {name}: fit on {len(train)} train examples, predicted {len(test)}")
    return predicted
