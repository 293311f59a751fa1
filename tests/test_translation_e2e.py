"""The translation pipeline end to end on a few hundred short real verse pairs (KJV -> RV1909, as a TSV):
the pair reader, Beam, tf.Transform with WordPiece vocabularies learnt in the Beam pipeline, training a
tiny attention encoder-decoder, the gate against the copy and word-for-word baselines (sacrebleu chrF),
the push, and a fresh-process reload of the pushed SavedModel (tensorflow + tensorflow_text only) that
translates raw sentences, cuts an over-long one with a warning and returns "" for an empty one; a
malformed TSV line stops the run naming file and line, with nothing pushed."""

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

SAMPLE = Path(__file__).resolve().parent / "data" / "translation_sample.tsv"
SMALL = ["--set", f"data.path={SAMPLE}", "--set", "trainer.epochs=30", "--set", "trainer.learning_rate=0.01",
         "--set", "trainer.batch_size=32", "--set", "trainer.patience=3", "--set", "trainer.bucket_boundaries=[16]",
         "--set", "model.units=64", "--set", "model.embedding_dim=64", "--set", "model.dropout=0.3",
         "--set", "transform.source_vocab_size=800", "--set", "transform.target_vocab_size=800",
         "--set", "transform.max_source_tokens=40", "--set", "transform.max_target_tokens=40",
         # On a few hundred pairs a word-for-word lexicon is hard to beat: the tiny model is gated against
         # copying the source only (the default config gates against both).
         "--set", "evaluator.thresholds={}", "--set", "evaluator.metrics.gate_baselines=[copy]",
         "--set", "evaluator.metrics.heatmap_test_sentences=1", "--set", "infra_validator.warmup_requests=2",
         "--set", "trainer.gradient_diagnostics=false"]  # tested in the sentiment e2e: saves 5-30 s

RELOAD = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
sentences = json.load(open(sys.argv[2]))
out = loaded.signatures["serving_default"](source=tf.constant(sentences))
beam = loaded.signatures["beam"](source=tf.constant(sentences[:1]))
att = loaded.signatures["attention"](source=tf.constant(sentences[:1]))
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow")]
print(json.dumps({"translation": [t.decode() for t in out["translation"].numpy()],
                  "truncated": out["truncated"].numpy().tolist(),
                  "beam": beam["translation"].numpy()[0].decode(),
                  "attention_rows": att["attention"].numpy()[0].sum(axis=-1).tolist(),
                  "source_pieces": [p.decode() for p in att["source_pieces"].numpy()[0]]}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("translation")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", "translation", *SMALL]) == 0
    yield {"work": work}
    mp.undo()


latest = functools.partial(executions.latest, app="translation")


def test_tiny_translator_beats_copying_the_source_and_is_pushed(pushed: dict) -> None:
    work = pushed["work"]
    folder = latest(work, "Evaluator") / "evaluation"
    evaluation = ModelEvaluation.read(folder)
    model, copy = evaluation["overall"]["model"], evaluation["overall"]["copy"]
    assert model["chrf"] > copy["chrf"], (model, copy)  # what the gate (copy only here) demands
    assert {"bleu", "chrf", "source_unk_share", "target_vocab_size"} <= set(model)
    assert model["source_unk_share"] < 0.05 and evaluation["overall"]["lexical"]["chrf"] > copy["chrf"]
    assert any(name.startswith("source_words:") for name in evaluation["slices"])
    assert ModelBlessing.read(latest(work, "Evaluator") / "blessing").blessed
    assert (work / "serving" / "translation" / "1" / "saved_model.pb").exists()
    assert list(folder.glob("attention_*.png")) and (folder / "translations_sample.json").exists()


def test_pushed_model_translates_raw_sentences_in_a_fresh_process(pushed: dict) -> None:
    work = pushed["work"]
    logged = [json.loads(line) for line in
              (latest(work, "Evaluator") / "evaluation" / "translations.jsonl").open(encoding="utf-8")][:5]
    too_long = " ".join(["And the king said unto them,"] * 12)  # about 80 pieces, over the 40 the model reads
    sentences = [logged[0]["source"], "", too_long] + [r["source"] for r in logged[1:]]
    path = work / "sentences.json"
    path.write_text(json.dumps(sentences), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(work / "serving" / "translation" / "1"), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    translation = served["translation"]
    # The reloaded model answers exactly what the Evaluator scored, for the same sentences.
    assert translation[0] == logged[0]["hypothesis"] and translation[3:] == [r["hypothesis"] for r in logged[1:]]
    assert translation[0] and translation[1] == "" and translation[2]
    assert served["truncated"] == [False, False, True] + [False] * 4
    assert "source sentence(s) longer than the model's maximum were truncated" in proc.stderr
    assert served["beam"]
    assert all(abs(s - 1.0) < 1e-4 for s in served["attention_rows"] if s > 0)  # a distribution per output piece


def test_malformed_tsv_line_stops_the_run_with_file_and_line(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    lines[123] = lines[123].replace("\t", " ")  # one field instead of two
    bad = workdir / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["run", "translation", "--set", f"data.path={bad}"]) == 1
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(bad))}:124: expected 2 tab-separated fields .* got 1", err), err
    assert not (workdir / "serving").exists()
    step_dir = workdir / "pipeline_root" / "translation" / "ExampleGen"
    assert not step_dir.exists() or not list(step_dir.iterdir())
