"""The text-generation pipeline end to end on four short excerpts of plays (two train works, one eval, one
test): real Beam, tf.Transform, truncated-BPTT training, the score signature through the Evaluator, a
fresh-process reload that generates text, and an empty file that stops the run with nothing pushed."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import executions
import mlflow_store
import pytest

from rnnpipe.artifacts import ModelBlessing, ModelEvaluation
from rnnpipe.cli import main
from rnnpipe.components.infra_validator import read_warmup

SAMPLE = Path(__file__).resolve().parent / "data" / "textgen_sample"
SMALL = ["--set", "data.holdout_every=4", "--set", "data.chunk_chars=200", "--set", "data.eval_context=50",
         "--set", "trainer.epochs=4", "--set", "trainer.batch_size=16", "--set", "trainer.learning_rate=0.01",
         "--set", "model.units=48", "--set", "model.embedding_dim=16", "--set", "model.bptt=50",
         "--set", "evaluator.metrics.baseline=unigram", "--set", "evaluator.metrics.ngram_order=3",
         "--set", "evaluator.thresholds={bpc: {upper_bound: 4.5}}", "--set", "evaluator.must_beat_peers=false",
         "--set", "evaluator.metrics.sample_length=40", "--set", "infra_validator.warmup_requests=2",
         "--set", "trainer.gradient_diagnostics=false"]  # tested in the sentiment e2e: saves 5-30 s

RELOAD = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
records = json.load(open(sys.argv[2]))
out = loaded.signatures["serving_default"](text=tf.constant(["ROMEO.\\n", "", "Wherefore"]),
                                           length=tf.constant([25, 7, 0]), temperature=tf.constant([0.8, 1.0, 0.5]))
scored = loaded.signatures["score"](text=tf.constant([r["text"] for r in records]),
                                    context_chars=tf.constant([r["context_chars"] for r in records]))
unadapted = loaded.signatures["score_adaptive"](text=tf.constant([r["text"] for r in records]),
                                                context_chars=tf.constant([r["context_chars"] for r in records]),
                                                rate=tf.zeros([len(records)]))
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow")]
print(json.dumps({"generated": [t.decode() for t in out["generated"].numpy()],
                  "length": out["length"].numpy().tolist(),
                  "bits": float(scored["bits"].numpy().sum()), "chars": int(scored["chars"].numpy().sum()),
                  "bits_rate_0": float(unadapted["bits"].numpy().sum())}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("textgen")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", "textgen", "--set", f"data.path={SAMPLE}", *SMALL]) == 0
    yield {"work": work}
    mp.undo()


latest = functools.partial(executions.latest, app="textgen")


def test_trained_model_beats_the_unigram_baseline_on_the_held_out_work(pushed: dict) -> None:
    work = pushed["work"]
    evaluation = ModelEvaluation.read(latest(work, "Evaluator") / "evaluation")
    overall = evaluation["overall"]
    assert overall["model"]["chars"] == overall["unigram"]["chars"] == 3976  # d_hamlet.txt less its first char
    assert overall["model"]["bpc"] < overall["unigram"]["bpc"] == overall["baseline"]["bpc"]
    # The whole held-out work read as one document, the output layer adapting (evaluator.metrics.adapt_rate)
    assert overall["model"]["bpc_adaptive"] < overall["model"]["bpc"]
    assert overall["peer/kn3"]["bpc"] < overall["bigram"]["bpc"] < overall["unigram"]["bpc"]
    assert list(evaluation["slices"]) == ["work:d_hamlet"]
    assert ModelBlessing.read(latest(work, "Evaluator") / "blessing").blessed

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("textgen").experiment_id])[0]
    assert run.data.metrics["Evaluator/test_bpc"] == pytest.approx(overall["model"]["bpc"])
    assert run.data.metrics["Evaluator/test_bpc_adaptive"] == pytest.approx(overall["model"]["bpc_adaptive"])
    assert run.data.metrics["Evaluator/unigram_bpc"] == pytest.approx(overall["unigram"]["bpc"])
    assert run.data.metrics["Evaluator/test_bpc.work:d_hamlet"] == pytest.approx(overall["model"]["bpc"])
    assert len(client.get_metric_history(run.info.run_id, "val/bits_per_character")) == 4
    assert run.data.tags["rnnpipe.pushed_version"] == "1"


def test_pushed_model_generates_and_scores_in_a_fresh_process(pushed: dict) -> None:
    work = pushed["work"]
    version_dir = work / "serving" / "textgen" / "1"
    warmup = read_warmup(version_dir / "assets.extra" / "tf_serving_warmup_requests")
    inputs = warmup[0].predict_log.request.inputs
    assert len(warmup) == 2 and sorted(inputs) == ["length", "temperature", "text"]
    from rnnpipe.components.example_io import example_to_dict, read_examples

    records = [example_to_dict(e) for e in read_examples(latest(work, "ExampleGen") / "examples", "test")]
    path = work / "records.json"
    path.write_text(json.dumps(records))
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(version_dir), str(path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [len(t) for t in out["generated"]] == out["length"] == [25, 7, 0]
    assert set("".join(out["generated"])) <= set((SAMPLE / "a_tempest.txt").read_text()
                                                 + (SAMPLE / "c_twelfth_night.txt").read_text())
    evaluation = ModelEvaluation.read(latest(work, "Evaluator") / "evaluation")
    assert out["chars"] == evaluation["overall"]["model"]["chars"]
    assert out["bits"] / out["chars"] == pytest.approx(evaluation["overall"]["model"]["bpc"], rel=1e-4)
    assert out["bits_rate_0"] == pytest.approx(out["bits"], rel=1e-4)  # score_adaptive at rate 0 is score


def test_samples_at_several_temperatures_come_from_the_serving_signature(pushed: dict) -> None:
    from rnnpipe.pipelines.textgen.metrics import generate_samples, samples_markdown

    samples = generate_samples(str(pushed["work"] / "serving" / "textgen" / "1"), ["KING.\n", "\n"], [0.5, 1.0], 30)
    assert [(s["temperature"], s["prompt"]) for s in samples] == [(0.5, "KING.\n"), (0.5, "\n"), (1.0, "KING.\n"),
                                                                   (1.0, "\n")]
    assert all(len(s["generated"]) == 30 for s in samples)
    assert "## temperature 1.0" in samples_markdown(samples)


def test_samples_reach_mlflow_and_the_cli_generates(pushed: dict, capsys: pytest.CaptureFixture) -> None:
    samples = (latest(pushed["work"], "Evaluator") / "evaluation" / "samples.md").read_text()
    assert all(f"## temperature {t}" in samples for t in (0.5, 0.8, 1.0))  # the default temperatures
    mlflow_copy = list((pushed["work"] / "mlartifacts").rglob("samples/samples.md"))
    assert mlflow_copy and mlflow_copy[0].read_text() == samples
    capsys.readouterr()
    assert main(["predict", "textgen", "KING.\n", "--input", "length=12", "--input", "temperature=0.7"]) == 0
    shown = capsys.readouterr().out
    assert "'KING.\\n': " in shown and "generated=" in shown and "length=12" in shown
    # Without --input: the defaults the push recorded (the config's infra_validator.request_defaults).
    assert main(["predict", "textgen", "KING.\n"]) == 0
    assert "length=40" in capsys.readouterr().out


def test_empty_text_file_stops_the_run_and_nothing_is_pushed(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    texts = workdir / "texts"
    shutil.copytree(SAMPLE, texts)
    (texts / "b_empty.txt").write_text("\n\n")
    assert main(["run", "textgen", "--set", f"data.path={texts}", *SMALL]) == 1
    assert f"{texts / 'b_empty.txt'}: empty text file" in capsys.readouterr().err
    assert not (workdir / "serving").exists()
    step_dir = workdir / "pipeline_root" / "textgen" / "ExampleGen"
    assert not step_dir.exists() or not list(step_dir.iterdir())


@pytest.mark.slow  # sentiment and tests/test_mlflow_model.py cover the pyfunc in the fast suite
def test_registered_model_loads_with_mlflow_pyfunc_and_answers_like_the_saved_model(pushed: dict) -> None:
    from test_mlflow_model import assert_same, pyfunc_and_saved_model

    # A temperature near 0 samples the likeliest character: both calls generate the same text. The frame has
    # no `length`: it comes from infra_validator.request_defaults, recorded with the model.
    prompts = ["KING.\n", "", "Wherefore art"]
    out = pyfunc_and_saved_model(pushed["work"], "textgen", {"text": prompts, "temperature": [1e-6] * 3})
    assert out["request_defaults"]["length"] == 40
    assert_same(out["pyfunc"], out["saved_model"])
    assert out["pyfunc"]["length"] == [40] * 3 and [len(t) for t in out["pyfunc"]["generated"]] == [40] * 3
