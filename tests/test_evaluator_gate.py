"""The Evaluator's blessing rules with real SavedModels whose quality is known by construction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import tensorflow as tf

from rnnpipe.artifacts import Blessing, Examples, ExamplesInfo, ModelBlessing, ModelEvaluation
from rnnpipe.components.evaluator import Evaluator, run_evaluator
from rnnpipe.components.example_io import write_examples
from rnnpipe.components.metrics import length_bucket
from rnnpipe.dsl import Artifact, Component


class KeywordModel(tf.Module):
    """Predicts 'positive' when the sentence contains ``keyword``."""

    def __init__(self, keyword: str) -> None:
        super().__init__()
        self.keyword = keyword

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict:
        hit = tf.cast(tf.strings.regex_full_match(text, f".*{self.keyword}.*"), tf.int64)
        probs = tf.stack([1.0 - tf.cast(hit, tf.float32), tf.cast(hit, tf.float32)], axis=1)
        return {"label_id": hit, "probabilities": probs}


class Upstream(Component):
    """Stands in for the Trainer and ExampleGen when only the Evaluator's wiring matters."""

    OUTPUTS = {"model": "Model", "examples": "Examples"}
    executor = staticmethod(lambda inputs, outputs, params, ctx: None)


def save(model: tf.Module, path: Path) -> Path:
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return path


class Recorder:
    def log_artifact(self, path, artifact_path=None) -> None:
        pass

    def set_tag(self, key, value) -> None:
        pass


def evaluate(tmp_path: Path, candidate: Path, champion_dir: Path | None, log: list[str] | None = None,
             **params) -> tuple[dict, Blessing]:
    examples = tmp_path / "examples"
    if not examples.exists():
        rows = [(split, {"text": f"{'good' if i % 3 else 'bad'} film {i}", "label": int(i % 3 > 0)})
                for split in ("train", "test") for i in range(60)]
        counts = write_examples(rows, {"text": "bytes", "label": "int"}, examples, ["train", "test"], 1)
        Examples.write_info(examples, ExamplesInfo(counts, source="generated"))
    out = tmp_path / f"eval-{len(list(tmp_path.glob('eval-*')))}"
    (out / "evaluation").mkdir(parents=True)
    (out / "blessing").mkdir()
    full = {k: v.default for k, v in Evaluator.PARAMETERS.items() if not v.required}
    slicing = {k: params.pop(k) for k in ("slice_keys", "length_feature", "length_edges") if k in params}
    full.update(metrics_config={"label_key": "label", "class_names": ["negative", "positive"], **slicing},
                champion_dir=str(champion_dir) if champion_dir else None, **params)
    metrics = run_evaluator(
        {"model": Artifact("model", "Model", str(candidate)),
         "examples": Artifact("examples", "Examples", str(examples))},
        {"evaluation": Artifact("evaluation", "ModelEvaluation", str(out / "evaluation")),
         "blessing": Artifact("blessing", "ModelBlessing", str(out / "blessing"))},
        full, SimpleNamespace(tracker=Recorder(), log=(log if log is not None else []).append))
    return metrics, ModelBlessing.read(out / "blessing")


def test_a_worse_candidate_is_not_blessed_and_a_good_one_is(tmp_path: Path) -> None:
    good = save(KeywordModel("good"), tmp_path / "good")
    worse = save(KeywordModel("film 1"), tmp_path / "worse")  # right on a few sentences only
    serving = tmp_path / "serving" / "demo"
    shutil.copytree(good, serving / "1")  # the champion

    metrics, blessing = evaluate(tmp_path, worse, serving, max_regression=0.02, must_beat_baseline=False)
    assert not blessing.blessed
    assert any("worse than the champion's (version 1) 1.0000 by more than 0.02" in r for r in blessing.reasons)
    # Always sure (probabilities 0 or 1): the calibration error is the error rate.
    assert metrics["test_ece"] == pytest.approx(1 - metrics["test_accuracy"]) and metrics["test_ece"] > 0

    metrics, blessing = evaluate(tmp_path, good, serving, max_regression=0.02)
    assert (blessing.blessed, blessing.reasons) == (True, []) and metrics["test_accuracy"] == 1.0
    assert blessing.details["primary_metric"] == "accuracy" and blessing.details["primary_value"] == 1.0
    assert metrics["baseline_accuracy"] < 0.7  # the majority class is 'positive', 2 in 3
    card = next(tmp_path.glob("eval-1/evaluation/model_card.md")).read_text()
    # Columns: count, accuracy, macro F1, ECE (sure and right: 0), then the baseline's accuracy.
    assert "| overall | 60 | 1.0000 | 1.0000 | 0.0000 | 0.6667 |" in card and "- blessed" in card


class PairModel(tf.Module):
    """Reads pairs of sentences: another input shape, as a model for other data would."""

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict:
        hit = tf.cast(tf.strings.regex_full_match(text[:, 0], ".*good.*"), tf.int64)
        return {"label_id": hit, "probabilities": tf.one_hot(hit, 2)}


def test_a_champion_reading_other_inputs_is_skipped_and_a_same_shape_one_still_gates(tmp_path: Path) -> None:
    worse = save(KeywordModel("film 1"), tmp_path / "worse")
    serving = tmp_path / "serving" / "demo"
    save(PairModel(), serving / "1")  # would fail if called with single sentences
    log: list[str] = []
    _, blessing = evaluate(tmp_path, worse, serving, log, max_regression=0.02, must_beat_baseline=False)
    assert (blessing.blessed, blessing.reasons) == (True, [])
    assert "champion" not in ModelEvaluation.read(tmp_path / "eval-0" / "evaluation")
    assert f"served model {serving / '1'} is no champion: its 'serving_default' inputs are text string[-1, 2], " \
           "the candidate's text string[-1]; the candidate is judged by thresholds and baseline only" in log

    shutil.copytree(save(KeywordModel("good"), tmp_path / "good"), serving / "2")  # same inputs: compared
    log.clear()
    _, blessing = evaluate(tmp_path, worse, serving, log, max_regression=0.02, must_beat_baseline=False)
    assert not blessing.blessed and not any("no champion" in line for line in log)
    assert any("worse than the champion's (version 2) 1.0000" in r for r in blessing.reasons)


class RefusingModel(KeywordModel):
    """Takes the candidate's inputs but refuses these records, as an ETS forecaster refuses another series."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict:
        checked = tf.debugging.Assert(tf.reduce_all(tf.strings.length(text) > 100), ["texts too short:", text])
        with tf.control_dependencies([checked]):
            return KeywordModel.serve.python_function(self, text)


def test_a_champion_that_refuses_the_records_is_skipped_with_its_reason(tmp_path: Path) -> None:
    good = save(KeywordModel("good"), tmp_path / "good")
    serving = tmp_path / "serving" / "demo"
    save(RefusingModel("good"), serving / "1")
    log: list[str] = []
    _, blessing = evaluate(tmp_path, good, serving, log, max_regression=0.02)
    assert (blessing.blessed, blessing.reasons) == (True, [])
    assert "champion" not in ModelEvaluation.read(tmp_path / "eval-0" / "evaluation")
    assert any(line.startswith(f"served model {serving / '1'} is no champion: it refuses these records (assertion "
                               "failed: [texts too short:]") and line.endswith("judged by thresholds and baseline only")
               for line in log), log


def test_slices_by_value_and_by_length(tmp_path: Path) -> None:
    good = save(KeywordModel("good"), tmp_path / "good")
    metrics, _ = evaluate(tmp_path, good, None, length_feature="text", length_edges=[2], slice_keys=["label"])
    assert metrics["test_accuracy.label:0"] == 1.0 and metrics["test_accuracy.label:1"] == 1.0
    assert metrics["test_accuracy.length:3-inf"] == 1.0 and "test_accuracy.length:1-2" not in metrics
    assert [length_bucket(t, [8, 16]) for t in ("a b", "w " * 9, "w " * 16, "w " * 17)] == \
        ["1-8", "9-16", "9-16", "17-inf"]


def test_thresholds_and_baseline_rules(tmp_path: Path) -> None:
    majority_like = save(KeywordModel("film"), tmp_path / "always_positive")
    _, blessing = evaluate(tmp_path, majority_like, None, thresholds={"macro_f1": 0.9})
    assert not blessing.blessed
    assert any(r.startswith("macro_f1 ") and "< threshold 0.9" in r for r in blessing.reasons)
    assert any("does not beat the baseline" in r for r in blessing.reasons)


def test_the_champion_is_part_of_the_cache_key_unless_it_is_the_candidate(tmp_path: Path) -> None:
    good = save(KeywordModel("good"), tmp_path / "good")
    other = save(KeywordModel("bad"), tmp_path / "other")
    serving = tmp_path / "serving" / "demo"
    upstream = Upstream()
    evaluator = Evaluator(model=upstream["model"], examples=upstream["examples"],
                          metrics_config={"class_names": ["n", "p"]}, champion_dir=str(serving))
    from rnnpipe.serving import PUSH_RECORD

    def push(model: Path, version: int, fingerprint: str | None) -> None:
        shutil.copytree(model, serving / str(version))
        if fingerprint is not None:  # as the Pusher records it: the pushed Model artifact's fingerprint
            record = serving / str(version) / PUSH_RECORD
            record.parent.mkdir(exist_ok=True)
            record.write_text(json.dumps({"model_fingerprint": fingerprint}))

    # The recorded fingerprints, not the folders' contents: a cache check downloads no remote champion.
    model = {"model": Artifact("model", "Model", "s3://not/read", "fp-good")}
    assert evaluator.external_fingerprint(model) == ""  # nothing served yet
    push(good, 1, "fp-good")
    assert evaluator.external_fingerprint(model) == ""  # the candidate is the champion
    push(other, 2, "fp-other")
    assert evaluator.external_fingerprint(model) == f"{serving / '2'}:fp-other"
    push(other, 3, None)  # pushed before push records existed
    assert evaluator.external_fingerprint(model) == f"{serving / '3'}:"


def test_a_champion_trained_on_another_data_source_is_skipped_and_the_source_is_recorded(tmp_path: Path) -> None:
    from rnnpipe.serving import PUSH_RECORD

    good = save(KeywordModel("good"), tmp_path / "good")
    worse = save(KeywordModel("film 1"), tmp_path / "worse")
    serving = tmp_path / "serving" / "demo"
    shutil.copytree(good, serving / "1")  # same inputs, better: it would block the candidate
    other = {"pattern": "/data/other-monthly.csv", "fields": {"label": "int", "text": "bytes"}}
    (serving / "1" / PUSH_RECORD).parent.mkdir(exist_ok=True)
    (serving / "1" / PUSH_RECORD).write_text(json.dumps({"model_fingerprint": "x", "data_source": other}))
    log: list[str] = []
    _, blessing = evaluate(tmp_path, worse, serving, log, max_regression=0.02, must_beat_baseline=False)
    assert (blessing.blessed, blessing.reasons) == (True, [])
    assert any(f"served model {serving / '1'} is no champion: it was trained on /data/other-monthly.csv" in line
               and "the candidate on generated" in line for line in log), log
    # The blessing carries the candidate's data source: the Pusher records it beside the pushed version.
    assert blessing.details["data_source"] == {"pattern": "generated", "fields": {}}

    same = {"pattern": "generated", "fields": {}}
    (serving / "1" / PUSH_RECORD).write_text(json.dumps({"model_fingerprint": "x", "data_source": same}))
    _, blessing = evaluate(tmp_path, worse, serving, max_regression=0.02, must_beat_baseline=False)
    assert not blessing.blessed  # the same data source: compared, and worse
