"""A small sentiment run the benchmarks share: the 300-sentence test sample, one epoch of a tiny model, no gate."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sentiment_sample.jsonl"
SMALL = ["--set", f"data.path={SAMPLE}", "--set", "trainer.epochs=1", "--set", "transform.min_frequency=1",
         "--set", "model.units=8", "--set", "model.embedding_dim=8", "--set", "evaluator.must_beat_baseline=false",
         "--set", "evaluator.thresholds={}"]
