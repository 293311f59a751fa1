"""The speech pipeline end to end on a tiny synthesized set (espeak-ng training voices, held-out espeak
variants and flite voices, 3-4 digits each): synthesis through sox, the manifest reader, real Beam and
tf.Transform (log-mel in the graph, train-split normalization, character vocabulary), a small Conv2D +
BiGRU trained with CTC, the gate against the empty transcript, the push, and a fresh process that imports
only TensorFlow and transcribes a WAV file's bytes; a truncated WAV stops the run by path, nothing pushed."""

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

MISSING = [p for p, exe in (("espeak-ng", "espeak-ng"), ("sox", "sox"), ("flite", "flite")) if not shutil.which(exe)]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs the Debian package(s) {', '.join(MISSING)} "
                                                      "(`make system-deps`)")

TINY = ["--set", "data.synthesis.utterances=360", "--set", "data.synthesis.heldout=30",
        "--set", "data.synthesis.flite=30", "--set", "data.synthesis.max_digits=4",
        "--set", "data.synthesis.pitch_shift_cents=0", "--set", "data.synthesis.band_limit_fraction=0",
        "--set", "trainer.epochs=12", "--set", "trainer.batch_size=16", "--set", "trainer.learning_rate=0.004",
        "--set", "trainer.patience=12", "--set", "model.conv_filters=[16, 16]", "--set", "model.units=64",
        "--set", "model.num_layers=1", "--set", "model.dropout=0.0",
        "--set", "model.spec_augment=null", "--set", "evaluator.thresholds={}",
        "--set", "evaluator.metrics.pocketsphinx_max_utterances=12", "--set", "infra_validator.warmup_requests=2",
        "--set", "trainer.gradient_diagnostics=false"]  # tested in the sentiment e2e: saves 5-30 s

RELOAD = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
wav = open(sys.argv[2], "rb").read()
text = loaded.signatures["serving_default"](audio=tf.constant([wav]))["text"].numpy()[0].decode()
waveform, _ = tf.audio.decode_wav(wav)
samples = waveform[:, 0][None, :]
from_waveform = loaded.signatures["transcribe_waveform"](waveform=samples, length=tf.shape(samples)[1:])
probs = loaded.signatures["frame_probabilities"](audio=tf.constant([wav]))
others = [open(p, "rb").read() for p in sys.argv[3:]]
batched = loaded.signatures["serving_default"](audio=tf.constant([wav, *others]))["text"].numpy()
alone = [loaded.signatures["serving_default"](audio=tf.constant([w]))["text"].numpy()[0] for w in others]
try:  # a path is refused: the server must not read a file that a client names
    loaded.signatures["serving_default"](audio=tf.constant([sys.argv[2].encode()]))
    refuses_paths = False
except tf.errors.InvalidArgumentError as e:
    refuses_paths = "bytes of a WAV file" in str(e)
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow",
                                                           "tensorflow_text")]
p = probs["probabilities"].numpy()
print(json.dumps({"text": text, "from_waveform": from_waveform["text"].numpy()[0].decode(),
                  "frames": int(probs["frames"].numpy()[0]), "shape": list(p.shape),
                  "batch_independent": batched.tolist() == [text.encode(), *alone], "refuses_paths": refuses_paths,
                  "sums": [float(p.sum(-1).min()), float(p.sum(-1).max())],
                  "classes": [c.decode() for c in probs["classes"].numpy()[0]]}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("speech")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.setenv("RNNPIPE_CACHE", str(work / "cache"))
    assert main(["run", "speech", *TINY]) == 0  # the gate is on: it must beat the empty transcript to be pushed
    yield {"work": work}
    mp.undo()


latest = functools.partial(executions.latest, app="speech")


def test_tiny_recognizer_beats_the_empty_transcript_and_is_pushed(pushed: dict) -> None:
    work = pushed["work"]
    evaluation = ModelEvaluation.read(latest(work, "Evaluator") / "evaluation")
    model, floor = evaluation["overall"]["model"], evaluation["overall"]["baseline"]
    assert floor["wer"] == 1.0 and floor["cer"] == 1.0
    assert model["wer"] < 0.9 and model["cer"] < 0.8, model  # words snap to the lexicon: CER follows WER
    assert {"test_set:espeak_heldout", "test_set:flite"} <= set(evaluation["slices"])
    assert any(k.startswith("speed_bucket:") for k in evaluation["slices"])
    ps = evaluation["overall"]["peer/pocketsphinx"]
    assert ps["count"] == evaluation["overall"]["model_on_pocketsphinx_subset"]["count"] > 0
    assert (latest(work, "Evaluator") / "evaluation" / "digit_confusions.png").stat().st_size > 1000
    assert ModelBlessing.read(latest(work, "Evaluator") / "blessing").blessed
    assert (work / "serving" / "speech" / "1" / "saved_model.pb").exists()


def test_pushed_model_transcribes_wav_bytes_in_a_fresh_tensorflow_only_process(pushed: dict) -> None:
    work = pushed["work"]
    logged = [json.loads(line) for line in (latest(work, "Evaluator") / "evaluation" / "predictions_sample.jsonl")
              .open(encoding="utf-8")]
    row = max(logged, key=lambda r: (r["predicted"] == r["transcript"], len(r["predicted"])))
    others = sorted((r["audio"] for r in logged if r["audio"] != row["audio"]), key=len)[:3]
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(work / "serving" / "speech" / "1"), row["audio"], *others],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    # The bytes a client sends give exactly what the Evaluator scored from the file's path.
    assert served["text"] == row["predicted"] and served["text"]
    assert served["from_waveform"] == served["text"]
    assert served["batch_independent"]  # a row's transcript does not depend on the other rows of a request
    assert served["refuses_paths"]
    assert served["shape"][:2] == [1, served["frames"]] and served["shape"][2] == len(served["classes"])
    assert served["classes"][0] == "" and set("onetwh ") <= set(served["classes"])
    assert abs(served["sums"][0] - 1) < 1e-4 and abs(served["sums"][1] - 1) < 1e-4


def test_truncated_wav_stops_the_run_by_path_and_nothing_is_pushed(pushed: dict, workdir: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    source = next((pushed["work"] / "cache" / "speech").glob("digits-*"))
    rows = [json.loads(line) for line in (source / "manifest.jsonl").open()][:40]
    (workdir / "wav").mkdir()
    for r in rows:
        shutil.copy(source / r["path"], workdir / r["path"])
    bad = workdir / rows[7]["path"]
    bad.write_bytes(bad.read_bytes()[:-2000])
    (workdir / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["run", "speech", "--set", f"data.path={workdir}"]) == 1
    err = capsys.readouterr().err
    assert f"{bad.resolve()}: truncated" in err, err
    assert not (workdir / "serving").exists()
