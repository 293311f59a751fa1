"""The handwriting pipeline end to end on a tiny set of composed digit lines: composing (split by source
image), Beam, tf.Transform, training a tiny CRNN with CTC, the gate against the empty transcript beside
the segmentation peer, the push, and a fresh process that imports only TensorFlow reading PNG files'
bytes with the pushed SavedModel, a line wider than any in training included; a corrupt, a blank or a
mislabelled image stops the run naming its path and pushes nothing."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import executions
import mlflow_store
import numpy as np
import pytest
from PIL import Image

from rnnpipe.artifacts import ModelBlessing, ModelEvaluation
from rnnpipe.cli import main
from rnnpipe.components.example_io import example_to_dict, read_examples

LINES = {"train": 400, "eval": 30, "test": 40}
TINY = ["--set", "data.compose.lines={" + ", ".join(f"{k}: {v}" for k, v in LINES.items()) + "}",
        "--set", "trainer.epochs=10", "--set", "trainer.batch_size=16", "--set", "trainer.learning_rate=0.01",
        "--set", "trainer.lr_schedule=constant",  # as tuned for this tiny set; the default decays (cosine)
        "--set", "trainer.patience=10", "--set", "model.units=32", "--set", "model.num_layers=1",
        "--set", "model.conv_filters=[16, 32, 32]", "--set", "evaluator.metrics.baseline=empty",
        "--set", "evaluator.thresholds={}", "--set", "evaluator.metrics.peer_max_glyphs=1500",
        "--set", "infra_validator.warmup_requests=4",
        "--set", "trainer.gradient_diagnostics=false"]  # tested in the sentiment e2e: saves 5-30 s

RELOAD = """
import json, sys
import tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
paths = json.loads(sys.argv[2])
images = [open(p, "rb").read() for p in paths]
assert all(i.startswith(b"\\x89PNG") for i in images)
alone = [fn(image=tf.constant([i]))["text"].numpy()[0].decode() for i in images]
together = [t.decode() for t in fn(image=tf.constant(images))["text"].numpy()]
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow")]
print(json.dumps({"alone": alone, "together": together}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("handwriting")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    # The gate is on: the model must beat the empty transcript (CER 1) to be pushed.
    assert main(["run", "handwriting", "--set", f"data.cache_dir={work / 'cache'}", *TINY]) == 0
    manifest = next((work / "cache").glob("handwriting/*/manifest.jsonl"))
    yield {"work": work, "lines": manifest.parent,
           "manifest": [json.loads(line) for line in manifest.open(encoding="utf-8")]}
    mp.undo()


latest = functools.partial(executions.latest, app="handwriting")


def test_tiny_crnn_beats_the_empty_transcript_and_is_pushed(pushed: dict) -> None:
    work = pushed["work"]
    evaluation = ModelEvaluation.read(latest(work, "Evaluator") / "evaluation")
    overall = evaluation["overall"]
    assert overall["baseline"]["cer"] == 1.0 and overall["baseline"]["line_accuracy"] == 0.0
    assert overall["model"]["cer"] < 0.8, overall["model"]
    assert overall["model"]["count"] == LINES["test"] and 0 <= overall["model"]["cer_beam"] < 1
    # The segmentation peer is scored on the same lines; touching digits are its weak spot.
    peer = overall["segmentation"]
    slices = evaluation["slices"]
    assert slices["spacing:touching"]["segmentation"]["cer"] > slices["spacing:separated"]["segmentation"]["cer"]
    assert 0 < peer["cer"] < 1 and {f"length:{n}" for n in range(3, 9)} >= {s for s in slices if "length" in s}
    assert (latest(work, "Evaluator") / "evaluation" / "misread_lines.png").stat().st_size > 1000
    assert ModelBlessing.read(latest(work, "Evaluator") / "blessing").blessed
    assert (work / "serving" / "handwriting" / "1" / "saved_model.pb").exists()


def test_composed_test_lines_share_no_source_image_with_training(pushed: dict) -> None:
    sources = {s: set() for s in LINES}
    for row in pushed["manifest"]:
        sources[row["split"]].update(row["sources"].split())
    assert sources["train"] and sources["test"] and sources["eval"]
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["eval"]
    assert not sources["eval"] & sources["test"]
    # The examples the model trained and was tested on say the same.
    examples = latest(pushed["work"], "ExampleGen") / "examples"
    written = {s: {g for e in read_examples(examples, s) for g in example_to_dict(e)["sources"].split()}
               for s in ("train", "test")}
    assert written["train"] == sources["train"] and written["test"] == sources["test"]


def test_pushed_model_reads_png_bytes_in_a_fresh_process(pushed: dict) -> None:
    work, lines = pushed["work"], pushed["lines"]
    logged = [json.loads(line) for line in
              (latest(work, "Evaluator") / "evaluation" / "predictions_sample.jsonl").open(encoding="utf-8")][:6]
    paths = [lines / r["path"] for r in logged]
    # A line wider than any the model trained on: three test lines side by side.
    train_width = max(Image.open(lines / r["path"]).width for r in pushed["manifest"] if r["split"] == "train")
    parts = [np.asarray(Image.open(p)) for p in paths[:3]]
    wide = np.concatenate([p[:min(q.shape[0] for q in parts)] for p in parts], axis=1)
    assert wide.shape[1] > train_width
    Image.fromarray(wide).save(work / "wide.png")
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(work / "serving" / "handwriting" / "1"),
                           json.dumps([str(p) for p in [*paths, work / "wide.png"]])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    # The PNG file read from disk answers what the Evaluator scored from the records.
    assert served["alone"][:-1] == [r["predicted"] for r in logged]
    # Padding is masked: a line answers the same alone and batched with a line three times as wide.
    assert served["together"] == served["alone"]
    assert set(served["alone"][-1]) <= set("0123456789")


def _bad_manifest(folder: Path, good: list[dict], source: Path, case: str) -> tuple[Path, str]:
    folder.mkdir()
    rows = []
    for r in good:
        shutil.copy(source / r["path"], folder / Path(r["path"]).name)
        rows.append({"path": Path(r["path"]).name, "text": r["text"]})
    bad = folder / "bad.png"
    if case == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        text, expected = "123", "not a readable image"
    elif case == "blank":
        Image.fromarray(np.full((40, 120), 231, np.uint8)).save(bad)
        text, expected = "123", "blank image"
    else:
        shutil.copy(source / good[0]["path"], bad)
        text, expected = "12a4", "outside the alphabet"
    rows.insert(len(rows) // 2, {"path": bad.name, "text": text})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest, expected


def test_bad_images_stop_the_run_naming_their_path_and_nothing_is_pushed(
        pushed: dict, workdir: Path, capsys: pytest.CaptureFixture) -> None:
    for case in ("corrupt", "blank", "out_of_alphabet"):
        manifest, expected = _bad_manifest(workdir / case, pushed["manifest"][:6], pushed["lines"], case)
        assert main(["run", "handwriting", "--set", f"data.path={manifest}"]) == 1, case
        err = capsys.readouterr().err
        assert str(workdir / case / "bad.png") in err and expected in err, err
        assert f"{manifest}:4" in err  # the manifest line that lists it
        assert not (workdir / "serving").exists()
        step_dir = workdir / "pipeline_root" / "handwriting" / "ExampleGen"
        assert not step_dir.exists() or not list(step_dir.iterdir())
