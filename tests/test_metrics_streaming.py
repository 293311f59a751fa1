"""The classification metrics accumulate batch by batch: any batch size gives the metrics of the whole split,
per slice, beside the train split's majority class, and every prediction is written once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnpipe.components.evaluator import EvalContext
from rnnpipe.components.metrics import PredictionsWriter, evaluate_classification

CONFIG = {"label_key": "label", "class_names": ["negative", "positive"], "slice_keys": ["source"],
          "length_feature": "text", "length_edges": [2]}


def split(n: int, seed: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    labels, predicted = rng.integers(0, 2, n), rng.integers(0, 2, n)
    records = [{"text": " ".join(["w"] * int(rng.integers(1, 5))), "label": int(y),
                "source": ["tweets", "movies", "news"][i % 3]} for i, y in enumerate(labels)]
    return records, {"label_id": predicted, "probabilities": np.stack([1.0 - predicted, predicted * 1.0], 1)}


def evaluate(out: Path, batch_size: int) -> dict:
    test, predictions = split(101, 0)
    train = [{"label": 1}] * 6 + [{"label": 0}] * 4
    out.mkdir()
    ev = EvalContext(test, predictions, CONFIG, out, "unused", lambda msg: None, train, batch_size=batch_size)
    result = evaluate_classification(ev)
    result.pop("artifacts")
    return result


def test_any_batch_size_gives_the_whole_split_metrics(tmp_path: Path) -> None:
    whole, batched = evaluate(tmp_path / "whole", 1000), evaluate(tmp_path / "batched", 7)
    assert batched == whole
    test, predictions = split(101, 0)
    y, p = np.array([r["label"] for r in test]), predictions["label_id"]
    assert whole["overall"]["model"]["accuracy"] == float(np.mean(y == p))
    assert whole["overall"]["baseline"]["accuracy"] == float(np.mean(y == 1))  # the train split's majority
    movies = np.array([r["source"] == "movies" for r in test])
    assert whole["slices"]["source:movies"]["model"]["accuracy"] == float(np.mean(y[movies] == p[movies]))
    assert list(whole["slices"]) == ["source:movies", "source:news", "source:tweets", "length:1-2", "length:3-inf"]
    rows = [json.loads(line) for line in (tmp_path / "batched" / "predictions.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in rows] == p.tolist()


def test_the_predictions_sample_is_the_first_rows(tmp_path: Path) -> None:
    with PredictionsWriter(tmp_path, sample_size=3) as writer:
        writer.write({"i": i} for i in range(5))
        writer.write([{"i": 5, "text": "señal"}])
    assert writer.rows == 6
    assert [json.loads(x)["i"] for x in writer.sample_path.read_text(encoding="utf-8").splitlines()] == [0, 1, 2]
    assert json.loads(writer.path.read_text(encoding="utf-8").splitlines()[-1])["text"] == "señal"
