"""Speech metrics for the Evaluator: word and character error rates (jiwer) overall, per test set and
per speed bucket, beside the empty-transcript floor (the gate's baseline: WER 1.0) and PocketSphinx, a
classic HMM recognizer (its wheel ships the US-English acoustic model and dictionary), decoding the same
WAV files with a digit-loop grammar. Digit confusions go to MLflow as a PNG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from typing import Any

import jiwer
import numpy as np

from rnnpipe.components.plots import plot_confusion_matrix

from .data import DIGITS

DEFAULTS = {"slice_keys": ["test_set", "speed_bucket"], "pocketsphinx": True, "pocketsphinx_max_utterances": 500,
            "sample_size": 200}
NONE = "(none)"


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """WER, CER and sentence accuracy; an empty reference list gives NaNs."""
    if not references:
        return {"count": 0, "wer": float("nan"), "cer": float("nan"), "sentence_accuracy": float("nan")}
    words = jiwer.process_words(references, hypotheses)
    return {"count": len(references), "wer": float(words.wer), "cer": float(jiwer.cer(references, hypotheses)),
            "sentence_accuracy": float(np.mean([r == h for r, h in zip(references, hypotheses, strict=True)])),
            "substitutions": int(words.substitutions), "deletions": int(words.deletions),
            "insertions": int(words.insertions)}


def digit_grammar() -> str:
    return ("#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( " + " | ".join(DIGITS) + " )+ ;\n")


class PocketSphinxDigits:
    """PocketSphinx (US-English HMM model of the pocketsphinx wheel) constrained to a loop of digit words."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder, get_model_path

        model = get_model_path()
        with tempfile.NamedTemporaryFile("w", suffix=".gram", delete=False) as fh:
            fh.write(digit_grammar())
        try:
            self.decoder = Decoder(hmm=os.path.join(model, "en-us", "en-us"), jsgf=fh.name, samprate=16000,
                                   dict=os.path.join(model, "en-us", "cmudict-en-us.dict"), loglevel="FATAL")
        finally:
            os.unlink(fh.name)

    def __call__(self, wav_path: str) -> str:
        with wave.open(wav_path) as w:
            raw = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
        mono = raw.mean(axis=1).astype("<i2").tobytes()  # the model hears what the network hears: a mixdown
        self.decoder.start_utt()
        self.decoder.process_raw(mono, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""


_DECODE = """
import json, sys
from rnnpipe.pipelines.speech.metrics import PocketSphinxDigits
decode = PocketSphinxDigits()
print(json.dumps([decode(path) for path in json.load(sys.stdin)]))
"""


def pocketsphinx_transcripts(paths: list[str]) -> list[str]:
    """PocketSphinxDigits' transcripts of WAV files, decoded in a fresh process: where TensorFlow has run (the
    Evaluator's process), PocketSphinx hears other words (seen: "four one nine seven" as six words)."""
    done = subprocess.run([sys.executable, "-c", _DECODE], input=json.dumps(paths), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"PocketSphinx failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def digit_confusions(references: list[str], hypotheses: list[str]) -> tuple[list[list[int]], list[str]]:
    """Counts of (reference word, hypothesis word) over aligned words; deletions and insertions pair with
    '(none)'. Words outside the digits are counted as 'other'."""
    labels = [*DIGITS, "other", NONE]
    index = {w: i for i, w in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), np.int64)
    aligned = jiwer.process_words(references, hypotheses)
    for ref, hyp, chunks in zip(aligned.references, aligned.hypotheses, aligned.alignments, strict=True):
        for c in chunks:
            r, h = ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]
            if c.type == "delete":
                h = [NONE] * len(r)
            elif c.type == "insert":
                r = [NONE] * len(h)
            for a, b in zip(r, h, strict=True):
                matrix[index.get(a, index["other"]), index.get(b, index["other"])] += 1
    return matrix.tolist(), labels


PEER = "peer/pocketsphinx"  # as the Evaluator names peers: MLflow metrics peer/pocketsphinx/wer, ...


def evaluate_speech(ev: Any) -> dict:
    """The Evaluator's metrics function (``ev`` is its EvalContext); predictions come from the serving
    signature's ``text``."""
    cfg = {**DEFAULTS, **ev.config}
    records = ev.records
    refs = [str(r["transcript"]) for r in records]
    hyps = [t.decode("utf-8") for t in ev.predictions["text"]]
    if ev.out_dir is None:  # scoring the champion: only overall.model is read
        return {"overall": {"model": error_rates(refs, hyps)}}
    peers: dict[str, list[str | None]] = {"baseline": [""] * len(records)}
    if cfg["pocketsphinx"]:
        # A deterministic spread over the test set, capped: PocketSphinx decodes at about 15x real time.
        step = max(1, -(-len(records) // cfg["pocketsphinx_max_utterances"]))
        start = time.perf_counter()
        heard = iter(pocketsphinx_transcripts([r["audio"] for r in records[::step]]))
        peers[PEER] = [next(heard) if i % step == 0 else None for i in range(len(records))]
        ev.log(f"PocketSphinx decoded {len(records[::step])} test utterances in {time.perf_counter() - start:.1f}s")

    def scored(idx: list[int]) -> dict:
        out = {"model": error_rates([refs[i] for i in idx], [hyps[i] for i in idx])}
        for name, guesses in peers.items():
            kept = [i for i in idx if guesses[i] is not None]
            out[name] = error_rates([refs[i] for i in kept], [guesses[i] for i in kept])
        if PEER in peers:  # the model on exactly the utterances PocketSphinx decoded
            kept = [i for i in idx if peers[PEER][i] is not None]
            out["model_on_pocketsphinx_subset"] = error_rates([refs[i] for i in kept], [hyps[i] for i in kept])
        return out

    evaluation = {"overall": scored(list(range(len(records)))), "slices": {},
                  "baseline": "the empty transcript (WER 1.0: every word deleted)",
                  "card_metrics": ["count", "wer", "cer", "sentence_accuracy"]}
    for key in cfg["slice_keys"]:
        values = [str(r.get(key)) for r in records]
        for value in sorted(set(values)):
            evaluation["slices"][f"{key}:{value}"] = scored([i for i, v in enumerate(values) if v == value])
    # Per-test-set WER beside the overall one, so that evaluator.thresholds can hold each set to its own bound.
    sets = {k.split(":", 1)[1]: v["model"]["wer"] for k, v in evaluation["slices"].items()
            if k.startswith("test_set:")}
    evaluation["overall"]["model"].update({f"wer_{name}": wer for name, wer in sets.items()})
    if "espeak_heldout" in sets and "flite" in sets:
        evaluation["overall"]["model"]["flite_espeak_wer_gap"] = sets["flite"] - sets["espeak_heldout"]

    out = ev.out_dir
    matrix, labels = digit_confusions(refs, hyps)
    keep = [i for i, label in enumerate(labels) if any(matrix[i]) or any(row[i] for row in matrix)]
    plot_confusion_matrix([[matrix[i][j] for j in keep] for i in keep], [labels[i] for i in keep],
                          out / "digit_confusions.png")
    sample = out / "predictions_sample.jsonl"
    with open(sample, "w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            if i < cfg["sample_size"]:
                fh.write(json.dumps({"audio": r["audio"], "test_set": r.get("test_set"), "transcript": refs[i],
                                     "predicted": hyps[i],
                                     "pocketsphinx": peers.get("pocketsphinx", [None] * len(records))[i]}) + "\n")
    evaluation["artifacts"] = [(out / "digit_confusions.png", "plots"), (sample, "evaluation")]
    return evaluation


