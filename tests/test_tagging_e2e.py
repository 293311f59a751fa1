"""The tagging pipeline end to end on 800 real Turkish UD sentences: the CoNLL-U reader, Beam,
tf.Transform, training a tiny BiLSTM + character tagger, the gate against the most-frequent-tag
baseline, the push, and a fresh-process reload of the pushed SavedModel tagging raw sentences; a
malformed CoNLL-U line stops the run with its file and line and pushes nothing."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import executions
import mlflow_store
import pytest

from rnnpipe.artifacts import ModelBlessing, ModelEvaluation
from rnnpipe.cli import main
from rnnpipe.pipelines.tagging.features import MAX_TOKENS

SAMPLE = Path(__file__).resolve().parent / "data" / "tagging_sample.conllu"
SMALL = ["--set", f"data.path={SAMPLE}", "--set", "trainer.epochs=6", "--set", "trainer.learning_rate=0.01",
         "--set", "trainer.batch_size=16", "--set", "trainer.bucket_boundaries=[10, 20]",
         "--set", "model.units=32", "--set", "model.embedding_dim=32", "--set", "model.char_units=24",
         "--set", "model.char_embedding_dim=16", "--set", "model.dropout=0.2",
         "--set", "evaluator.thresholds={}", "--set", "evaluator.must_beat_peers=false",  # a tiny model vs a CRF
         "--set", "infra_validator.warmup_requests=4",
         "--set", "trainer.gradient_diagnostics=false"]  # tested in the sentiment e2e: saves 5-30 s

RELOAD = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
texts = json.load(open(sys.argv[2]))
out = fn(text=tf.constant(texts))
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow")]
n = out["length"].numpy().tolist()
print(json.dumps({"length": n, "width": int(out["tags"].shape[1]),
                  "tokens": [[t.decode() for t in row[:k]] for row, k in zip(out["tokens"].numpy(), n)],
                  "tags": [[t.decode() for t in row[:k]] for row, k in zip(out["tags"].numpy(), n)],
                  "padding": sorted({t.decode() for row, k in zip(out["tags"].numpy(), n) for t in row[k:]})}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("tagging")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", "tagging", *SMALL]) == 0  # the gate is on: it must beat the baseline to be pushed
    yield {"work": work}
    mp.undo()


latest = functools.partial(executions.latest, app="tagging")


def test_tiny_tagger_beats_the_most_frequent_tag_baseline_and_is_pushed(pushed: dict) -> None:
    work = pushed["work"]
    evaluation = ModelEvaluation.read(latest(work, "Evaluator") / "evaluation")
    model, baseline = evaluation["overall"]["model"], evaluation["overall"]["baseline"]
    assert model["accuracy"] > baseline["accuracy"] > 0.7, (model["accuracy"], baseline["accuracy"])
    # Words unseen in training are where the characters help: far above guessing the commonest tag.
    assert model["oov_accuracy"] > baseline["oov_accuracy"]
    assert 0.1 < model["oov_rate"] < 0.5 and model["tokenization_mismatches"] == 0
    assert {"f1_NOUN", "f1_VERB", "f1_PUNCT"} <= set(model) and model["f1_PUNCT"] > 0.9
    assert evaluation["baseline"].startswith("most frequent train tag per word")
    assert ModelBlessing.read(latest(work, "Evaluator") / "blessing").blessed
    assert (work / "serving" / "tagging" / "1" / "saved_model.pb").exists()


def test_pushed_model_tags_raw_sentences_in_a_fresh_process(pushed: dict) -> None:
    work = pushed["work"]
    logged = [json.loads(line) for line in
              (latest(work, "Evaluator") / "evaluation" / "predictions_sample.jsonl").open(encoding="utf-8")][:20]
    texts = ["Bu kitabı   çok beğendim .", ""] + [" ".join(r["tokens"]) for r in logged]
    path = work / "texts.json"
    path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(work / "serving" / "tagging" / "1"), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["width"] == MAX_TOKENS and served["padding"] == [""]
    # A raw sentence: split on whitespace, one tag from the training tag set per token.
    assert served["tokens"][0] == ["Bu", "kitabı", "çok", "beğendim", "."] and served["length"][:2] == [5, 0]
    tagset = {t for r in logged for t in r["tags"]}
    assert set(served["tags"][0]) <= tagset and served["tags"][0][-1] == "PUNCT"
    # The reloaded model answers exactly what the Evaluator scored.
    for row, tokens, tags in zip(logged, served["tokens"][2:], served["tags"][2:], strict=True):
        assert tokens == row["tokens"] and tags == row["predicted"]


def test_malformed_conllu_line_stops_the_run_with_file_and_line(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    target = next(i for i, line in enumerate(lines) if i > 1000 and line[:1].isdigit())
    lines[target] = "\t".join(lines[target].split("\t")[:8])  # 8 columns instead of 10
    bad = workdir / "bad.conllu"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["run", "tagging", "--set", f"data.path={bad}"]) == 1
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(bad))}:{target + 1}: expected 10 tab-separated columns .* got 8", err), err
    assert not (workdir / "serving").exists()
    step_dir = workdir / "pipeline_root" / "tagging" / "ExampleGen"
    assert not step_dir.exists() or not list(step_dir.iterdir())


@pytest.mark.slow  # sentiment and tests/test_mlflow_model.py cover the pyfunc in the fast suite
def test_registered_model_loads_with_mlflow_pyfunc_and_answers_like_the_saved_model(pushed: dict) -> None:
    from test_mlflow_model import assert_same, pyfunc_and_saved_model

    logged = [json.loads(line) for line in
              (latest(pushed["work"], "Evaluator") / "evaluation" / "predictions_sample.jsonl").open(encoding="utf-8")]
    out = pyfunc_and_saved_model(pushed["work"], "tagging", {"text": [" ".join(r["tokens"]) for r in logged[:5]]})
    assert_same(out["pyfunc"], out["saved_model"])
    for row, tags, n in zip(logged, out["pyfunc"]["tags"], out["pyfunc"]["length"], strict=False):
        assert tags[:n] == row["predicted"]
