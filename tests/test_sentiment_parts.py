from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.app import load_application
from rnnpipe.config import load_config
from rnnpipe.errors import ConfigError, DataError
from rnnpipe.models import build_sequence_classifier
from rnnpipe.pipelines.sentiment.data import parse_ground_truth
from rnnpipe.pipelines.sentiment.features import CHARS_KEY, NUM_CHARS, TOKENS_KEY, char_ids, tokenize
from rnnpipe.pipelines.sentiment.model import TASK, THREE_CLASS_TASK, lexicon_features


def test_ground_truth_parsing_labels_polarity_and_drops_neutral() -> None:
    text = "1\t2.5\tGreat film\r\n2\t0.0\tA film\r\n3\t-0.1\tMeh\r\n"
    records = parse_ground_truth("movie.txt", text, "movie", neutral_band=0.0)
    assert [(r["id"], r["label"], r["source"]) for r in records] == [("1", 1, "movie"), ("3", 0, "movie")]
    assert [r["id"] for r in parse_ground_truth("movie.txt", text, "movie", neutral_band=0.2)] == ["1"]


def test_three_classes_keep_the_neutral_band_as_the_middle_class() -> None:
    text = "1\t2.5\tGreat film\n2\t0.0\tA film\n3\t-0.4\tMeh\n4\t-0.6\tDull\n5\t0.5\tFine\n"
    records = parse_ground_truth("movie.txt", text, "movie", neutral_band=0.5, classes=3)
    assert [(r["id"], r["label"]) for r in records] == [("1", 2), ("2", 1), ("3", 1), ("4", 0), ("5", 1)]


def test_three_class_config_builds_a_three_class_pipeline_and_refuses_other_counts(tmp_path: Path) -> None:
    application = load_application("sentiment")

    def build(*sets: str):
        cfg = load_config(application.config_file, sets=[f"serving_dir={tmp_path}", f"data.cache_dir={tmp_path}",
                                                         *sets])
        return {s.id: s.params for s in application.build_pipeline(cfg).steps}

    params = build("data.classes=3")
    assert params["Trainer"]["task"].endswith("model:THREE_CLASS_TASK")
    assert params["Evaluator"]["metrics_config"]["class_names"] == ["negative", "neutral", "positive"]
    assert params["SchemaGen"]["curated_schema"].endswith("schema_three_class.pbtxt")
    assert params["ExampleGen"]["source"].endswith("vader_sentences-3class-band0.5.jsonl")  # not the 2-class file
    assert build("data.classes=3", "data.neutral_band=0.25")["ExampleGen"]["source"].endswith("band0.25.jsonl")
    assert build()["ExampleGen"]["source"].endswith("/vader_sentences.jsonl")
    with pytest.raises(ConfigError, match=r"data.classes: expected 2 .* or 3 .*, got 4"):
        build("data.classes=4")
    with pytest.raises(ConfigError, match=r"data.neutral_band: expected a number >= 0 .*, got -0.5"):
        build("data.neutral_band=-0.5")


def test_the_lexicons_content_keys_the_trainer_and_a_lexicon_changed_since_is_refused(tmp_path: Path) -> None:
    from rnnpipe.pipelines.sentiment import lexicon_path, model_hparams
    from rnnpipe.pipelines.sentiment.model import build_model

    cfg = load_config(load_application("sentiment").config_file, sets=[f"data.cache_dir={tmp_path}"])
    lexicon = lexicon_path(cfg)
    lexicon.parent.mkdir(parents=True, exist_ok=True)
    lexicon.write_text("good\t1.9\t0.9\t[2, 2]\n")
    first = model_hparams(cfg)
    lexicon.write_text("good\t2.9\t0.9\t[3, 3]\n")
    second = model_hparams(cfg)
    assert first["lexicon_path"] == second["lexicon_path"] and first["lexicon_sha256"] != second["lexicon_sha256"]
    with pytest.raises(DataError, match=r"vader_lexicon.txt: the lexicon changed after the pipeline was built"):
        build_model(first, tft_output=None)


def test_three_class_task_names_the_middle_class_neutral() -> None:
    out = THREE_CLASS_TASK.postprocess(tf.constant([[0.1, 0.7, 0.2], [0.1, 0.2, 0.7]]), None)
    assert [x.decode() for x in out["label"].numpy()] == ["neutral", "positive"]
    assert TASK.postprocess(tf.constant([[0.3, 0.7]]), None)["label"].numpy()[0] == b"positive"


def test_ground_truth_parse_error_names_file_and_line() -> None:
    with pytest.raises(DataError, match=r"tweets\.txt:2: score 'high' is not a number"):
        parse_ground_truth("tweets.txt", "1\t1.0\tok\n2\thigh\tbad\n", "tweets", 0.0)


def test_tokenizer_splits_punctuation_and_keeps_contractions() -> None:
    tokens = tokenize(tf.constant(["Don't   MISS it!! &amp; see http://x.io @bob"])).to_list()[0]
    assert tokens == [b"don't", b"miss", b"it", b"!", b"!", b"&", b"see", b"url", b"@", b"user"]


def test_character_ids_fold_into_one_row_per_token_batched_or_not() -> None:
    tokens = tokenize(tf.constant(["Sooo good", "", "café ☺"]))
    chars = char_ids(tokens, 3)
    assert chars.row_lengths().numpy().tolist() == [6, 0, 6]
    ids = tf.ragged.constant([[5, 9], [], [7, 1]], dtype=tf.int64)
    batched = TASK.model_inputs({TOKENS_KEY: ids, CHARS_KEY: chars})
    # Code point + 1 below 255, NUM_CHARS - 1 for every other one; 0 pads a token and a text.
    s, o, g = ord("s") + 1, ord("o") + 1, ord("g") + 1
    assert batched["chars"].numpy().tolist() == [
        [[s, o, o], [g, o, o]],
        [[0, 0, 0], [0, 0, 0]],
        [[ord("c") + 1, ord("a") + 1, ord("f") + 1], [NUM_CHARS - 1, 0, 0]]]
    assert batched["tokens"].numpy().tolist() == [[5, 9], [0, 0], [7, 1]]
    one = TASK.model_inputs({TOKENS_KEY: ids[0], CHARS_KEY: chars[0]})
    assert one["chars"].numpy().tolist() == [[s, o, o], [g, o, o]]
    empty = TASK.model_inputs({TOKENS_KEY: ids[1], CHARS_KEY: chars[1]})
    assert empty["chars"].shape == (0, 0)
    assert TASK.sequence_length(one) == 2
    # Without characters the model reads the ids alone, as before.
    assert TASK.model_inputs({TOKENS_KEY: ids}).numpy().tolist() == [[5, 9], [0, 0], [7, 1]]


def test_lexicon_features_align_with_shifted_vocabulary_ids() -> None:
    features = lexicon_features([b"good", b"table", b"awful"], {"good": 1.9, "awful": -2.0})
    assert features.shape == (5, 2)  # padding, 3 tokens, OOV
    np.testing.assert_allclose(features, [[0, 0], [0.475, 1], [0, 0], [-0.5, 1], [0, 0]])


def test_token_features_are_frozen_and_shape_checked() -> None:
    features = np.random.default_rng(0).normal(size=(12, 2)).astype("float32")
    model = build_sequence_classifier(12, 2, embedding_dim=4, units=4, token_features=features)
    frozen = model.get_layer("token_features")
    assert not frozen.trainable
    np.testing.assert_allclose(frozen.get_weights()[0], features)
    with pytest.raises(ValueError, match=r"Expected token_features of shape \(vocab_size=12, k\), received"):
        build_sequence_classifier(12, 2, token_features=features[:5])


def test_a_first_run_keys_its_trainer_with_the_lexicon_it_fetched(tmp_path: Path, monkeypatch) -> None:
    """`rnnpipe run` builds the pipeline again after fetching: on a fresh machine the lexicon's fingerprint is
    then in the Trainer's key from the first run, as in every later one (else the second run trains again)."""
    from rnnpipe import runner
    from rnnpipe.cli import main
    from rnnpipe.fingerprint import fingerprint_dir
    from rnnpipe.pipelines.sentiment import data

    def fetch(dest: Path, lexicon: Path, band: float, classes: int) -> Path:  # the sdist's files, not downloaded
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text('{"id": "1", "source": "movie", "score": 2.0, "text": "Great film", "label": 1}\n')
        lexicon.write_text("great\t3.1\t0.9\t[3, 3]\n")
        return dest

    class Started(Exception):
        pass

    def run_pipeline(pipeline: Any, cfg: Any, **kwargs: Any) -> None:
        seen.update(next(s for s in pipeline.steps if s.id == "Trainer").params["hparams"])
        raise Started

    seen: dict = {}
    monkeypatch.setattr(data, "fetch", fetch)
    monkeypatch.setattr(runner, "run_pipeline", run_pipeline)
    with pytest.raises(Started):
        main(["run", "sentiment", "--set", f"data.cache_dir={tmp_path}"])
    assert seen["lexicon_sha256"] == fingerprint_dir(tmp_path / "sentiment" / "vader_lexicon.txt")
