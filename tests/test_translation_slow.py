"""The default translation run (KJV -> RV1909 verse pairs, default config): exported, trained, gated
against both baselines and pushed; the pushed model's greedy and beam signatures answer a 15-word
sentence in a fresh process. About 20 minutes on 2 cores: `make test-slow`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnpipe.artifacts import ModelEvaluation
from rnnpipe.cli import main

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("mod2imp") is None, reason="`make system-deps` installs libsword-utils")]

SENTENCE = "And the LORD spake unto Moses, saying, Speak unto the children of Israel, and say"
RELOAD = """
import json, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
out = {}
for name in ("greedy", "beam"):
    fn = loaded.signatures[name]
    fn(source=tf.constant([sys.argv[2]]))
    start = time.perf_counter()
    result = fn(source=tf.constant([sys.argv[2]]))
    out[name] = {"translation": result["translation"].numpy()[0].decode(), "ms": 1000 * (time.perf_counter() - start)}
print(json.dumps(out))
"""


def test_default_run_beats_both_baselines_and_serves_greedy_and_beam(workdir: Path) -> None:
    assert main(["run", "translation"]) == 0  # blessed: chrF above copy and lexical, and the threshold
    step = sorted((workdir / "pipeline_root" / "translation" / "Evaluator").glob("[0-9]*"), key=lambda p: int(p.name))
    overall = ModelEvaluation.read(step[-1] / "evaluation")["overall"]
    # The aim: chrF >= 40 (measured 2026-12-05 with guided alignment, batches of 32, tied embeddings and
    # 16 minutes of training: 54.0 / 53.6 / 53.4 at seeds 42 / 1 / 2, beam 8 and a coverage penalty, the lexicon
    # 43.7). A slower machine holds fewer epochs in the budget, so the +10 over the lexicon is not asserted.
    assert overall["model"]["chrf"] >= 40 and overall["model"]["chrf"] > overall["lexical"]["chrf"]
    assert overall["model"]["bleu"] > overall["lexical"]["bleu"]
    assert overall["model"]["bleu"] > overall["copy"]["bleu"]
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(workdir / "serving" / "translation" / "1"), SENTENCE],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["greedy"]["translation"] and served["beam"]["translation"]
