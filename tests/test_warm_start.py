"""trainer.warm_start: champion: the Trainer starts from the weights of the served SavedModel when the
vocabulary and the architecture match, and says which of them differs otherwise."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf

from rnnpipe.components.training import warm_start_from, weights_digest


def classifier(units: int = 4) -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(2)])


def served(tmp_path: Path, model: keras.Model, vocabulary: str) -> Path:
    """A version folder laid out as the export writes one: the Keras model tracked as ``model``, the
    vocabulary files under assets/."""
    module = tf.Module()
    module.model = model
    version = tmp_path / "serving" / "1"
    tf.saved_model.save(module, str(version))
    (version / "assets").mkdir(exist_ok=True)
    (version / "assets" / "tokens").write_text(vocabulary)
    return version


def transform_output(tmp_path: Path, vocabulary: str) -> SimpleNamespace:
    assets = tmp_path / "transform_fn" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "tokens").write_text(vocabulary)
    return SimpleNamespace(transform_savedmodel_dir=str(assets.parent))


def test_the_new_model_starts_from_the_champions_weights(tmp_path: Path) -> None:
    champion = classifier()
    version = served(tmp_path, champion, "a\nb\n")
    fresh = classifier()
    assert weights_digest(fresh) != weights_digest(champion)
    assert warm_start_from(fresh, version, transform_output(tmp_path, "a\nb\n")) is None
    assert weights_digest(fresh) == weights_digest(champion)
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(fresh(x), champion(x), rtol=1e-6)


def test_a_changed_vocabulary_or_architecture_is_named(tmp_path: Path) -> None:
    version = served(tmp_path, classifier(), "a\nb\n")
    assert warm_start_from(classifier(), version, transform_output(tmp_path / "v2", "a\nb\nc\n")) == \
        "the vocabulary changed (tokens)"
    reason = warm_start_from(classifier(units=8), version, transform_output(tmp_path / "v1", "a\nb\n"))
    assert reason is not None and reason.startswith("the architecture differs")


def test_the_served_versions_push_record_keys_the_warm_started_trainer(tmp_path: Path) -> None:
    import json

    from rnnpipe.components.trainer import Trainer
    from rnnpipe.serving import PUSH_RECORD

    serving = tmp_path / "serving"
    trainer = SimpleNamespace(params={"warm_start": "champion", "warm_start_dir": str(serving)})
    assert Trainer.external_fingerprint(trainer, {}) == ""  # nothing served: trained from scratch
    version = served(tmp_path, classifier(), "a\nb\n")
    (version / PUSH_RECORD).parent.mkdir(exist_ok=True)
    (version / PUSH_RECORD).write_text(json.dumps({"model_fingerprint": "fp-1"}))
    assert Trainer.external_fingerprint(trainer, {}) == f"{version}:fp-1"  # where it is served, what was pushed
    cold = SimpleNamespace(params={"warm_start": "none", "warm_start_dir": str(serving)})
    assert Trainer.external_fingerprint(cold, {}) == ""
