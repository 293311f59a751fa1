"""Slow speech checks: the real recorded WAVs of Debian's pocketsphinx-testdata through a pushed model
(a smoke test: a digits model cannot transcribe Austen, but every file must decode to text in the model's
alphabet), batch-1 latency on a 3-second utterance as WAV bytes, and every kind of bad WAV in a user's
manifest stopping the run by path with nothing pushed."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import mlflow_store
import numpy as np
import pytest
import tensorflow as tf
from test_speech_e2e import MISSING, TINY

from rnnpipe.cli import main
from rnnpipe.pipelines.speech import data

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason=f"needs the Debian package(s) "
                                                                         f"{', '.join(MISSING)} (`make system-deps`)")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("speech-slow")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.setenv("RNNPIPE_CACHE", str(work / "cache"))
    assert main(["run", "speech", *TINY]) == 0
    yield {"work": work, "model": tf.saved_model.load(str(work / "serving" / "speech" / "1"))}
    mp.undo()


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="needs the Debian package pocketsphinx-testdata")
def test_pocketsphinx_testdata_recordings_decode_to_text(served: dict, tmp_path: Path) -> None:
    wavs = sorted(TESTDATA.rglob("*.wav"))
    # The raw files are headerless 16 kHz 16-bit mono: sox gives them a header.
    for raw in sorted(TESTDATA.rglob("*.raw")):
        out = tmp_path / f"{raw.stem}.wav"
        subprocess.run(["sox", "-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", str(raw), str(out)],
                       check=True)
        wavs.append(out)
    assert len(wavs) >= 10
    fn = served["model"].signatures["serving_default"]
    texts = {w.name: fn(audio=tf.constant([w.read_bytes()]))["text"].numpy()[0].decode() for w in wavs}
    print(json.dumps(texts, indent=1))
    assert all(set(t) <= data.ALPHABET for t in texts.values())
    assert sum(bool(t) for t in texts.values()) >= len(texts) // 2  # speech is heard as something


def test_batch_one_latency_on_a_three_second_utterance(served: dict, tmp_path: Path) -> None:
    source = next((served["work"] / "cache" / "speech").glob("digits-*"))
    rows = [json.loads(line) for line in (source / "manifest.jsonl").open()]
    clips = [np.frombuffer((source / r["path"]).read_bytes()[44:], "<i2") for r in rows[:8]]
    three = np.concatenate(clips)[:48000]
    path = tmp_path / "three_seconds.wav"
    data.write_wav(path, three)
    fn = served["model"].signatures["serving_default"]
    audio = tf.constant([path.read_bytes()])
    fn(audio=audio)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        fn(audio=audio)
        times.append(time.perf_counter() - start)
    p50 = sorted(times)[len(times) // 2] * 1000
    print(f"batch-1 latency, 3-second utterance as WAV bytes: p50 {p50:.1f} ms")
    assert p50 < 3000  # far faster than real time


@pytest.mark.parametrize("kind", ["silent", "rate", "text", "eight_bit"])
def test_each_bad_wav_in_a_user_manifest_stops_the_run_by_path(served: dict, workdir: Path, kind: str,
                                                               capsys: pytest.CaptureFixture) -> None:
    from test_speech_parts import bad_wavs

    source = next((served["work"] / "cache" / "speech").glob("digits-*"))
    rows = [json.loads(line) for line in (source / "manifest.jsonl").open()][:30]
    (workdir / "wav").mkdir()
    for r in rows:
        shutil.copy(source / r["path"], workdir / r["path"])
    bad = {p.stem: (p, m) for p, m in bad_wavs(workdir / "wav").items()}[kind]
    rows.append({"path": f"wav/{bad[0].name}", "transcript": "one two"})
    (workdir / "manifest.csv").write_text("path,transcript\n" + "".join(f"{r['path']},{r['transcript']}\n"
                                                                        for r in rows))
    assert main(["run", "speech", "--set", f"data.path={workdir / 'manifest.csv'}"]) == 1
    err = capsys.readouterr().err
    assert f"{bad[0].resolve()}: " in err and bad[1] in err, err
    assert not (workdir / "serving").exists()
