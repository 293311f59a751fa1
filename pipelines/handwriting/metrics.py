"""Handwriting metrics for the Evaluator: character error rate (jiwer) and line accuracy, overall, per line
length and per spacing (touching vs separated digits), beside the segment-then-classify peer and the empty
transcript; the beam-search signature scored too; misread lines as a PNG grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from rnnpipe.components.evaluator import predict_raw

from .data import decode_record_image
from .peer import SegmentationPeer

DEFAULTS = {"baseline": "segmentation", "peer_max_glyphs": 6000, "beam": True, "grid_size": 24, "sample_size": 200}
BASELINES = ("segmentation", "empty")
PEER_NAMES = {"segmentation": "segmentation peer (connected components + SVM on train glyphs)",
              "empty": "the empty transcript"}


def line_metrics(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Character error rate (edits / reference characters), line accuracy, lines and characters."""
    if not references:
        return {"count": 0, "cer": float("nan"), "line_accuracy": float("nan")}
    return {"count": len(references), "chars": sum(len(r) for r in references),
            "cer": float(jiwer.cer(references, hypotheses)),
            "line_accuracy": float(np.mean([r == h for r, h in zip(references, hypotheses, strict=True)]))}


def _texts(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def evaluate_lines(ev: Any) -> dict:
    """The Evaluator's metrics function (``ev`` is its EvalContext)."""
    cfg = {**DEFAULTS, **ev.config}
    if cfg["baseline"] not in BASELINES:
        raise ValueError(f"evaluator.metrics.baseline must be one of {', '.join(BASELINES)}; got {cfg['baseline']!r}")
    records = ev.records
    references = [str(r["text"]) for r in records]
    greedy = _texts(ev.predictions["text"])
    if ev.out_dir is None:  # scoring the champion: only overall.model is read
        return {"overall": {"model": line_metrics(references, greedy)}}

    peer = SegmentationPeer(cfg["peer_max_glyphs"]).fit(ev.train_records(), ev.log)
    readings = {"model": greedy, "segmentation": peer.read(records), "empty": [""] * len(records)}
    beam = None
    if cfg["beam"] and ev.model_dir:
        beam = _texts(predict_raw(ev.model_dir, records, signature="beam_search")["text"])
    # The gate compares the model with "baseline"; the other reading is a peer column.
    names = {"model": "model", cfg["baseline"]: "baseline"}
    names.update({k: k for k in readings if k not in names})

    def score(idx: list[int]) -> dict:
        refs = [references[i] for i in idx]
        out = {names[k]: line_metrics(refs, [v[i] for i in idx]) for k, v in readings.items()}
        if beam is not None:
            b = line_metrics(refs, [beam[i] for i in idx])
            out["model"].update({"cer_beam": b["cer"], "line_accuracy_beam": b["line_accuracy"]})
        return out

    evaluation = {"overall": score(list(range(len(records)))), "slices": {}, "baseline": PEER_NAMES[cfg["baseline"]],
                  "card_metrics": ["count", "cer", "line_accuracy", "cer_beam", "line_accuracy_beam"]}
    slicers = {"length": lambda r: len(str(r["text"])), "spacing": lambda r: r.get("spacing")}
    for name, slicer in slicers.items():
        values = [slicer(r) for r in records]
        for value in sorted({v for v in values if v is not None}):
            evaluation["slices"][f"{name}:{value}"] = score([i for i, v in enumerate(values) if v == value])

    out = ev.out_dir
    sample = out / "predictions_sample.jsonl"
    with open(sample, "w", encoding="utf-8") as fh:
        for i, r in enumerate(records[:cfg["sample_size"]]):
            fh.write(json.dumps({"path": r.get("path"), "text": references[i], "predicted": greedy[i],
                                 "beam": beam[i] if beam else None, "peer": readings["segmentation"][i],
                                 "spacing": r.get("spacing")}) + "\n")
    artifacts = [(sample, "evaluation")]
    misread = [i for i in range(len(records)) if greedy[i] != references[i]][:cfg["grid_size"]]
    if misread:
        grid = plot_misread(records, misread, references, greedy, readings["segmentation"], out / "misread_lines.png")
        artifacts.append((grid, "plots"))
    evaluation["artifacts"] = artifacts
    return evaluation


def plot_misread(records: list[dict], idx: list[int], references: list[str], model: list[str], peer: list[str],
                 path: Path) -> Path:
    """A PNG grid of misread line images, each titled with its transcript, the model's and the peer's reading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows = (len(idx) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx, strict=False):
        ax.imshow(decode_record_image(records[i]["image"]), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{references[i]} | model {model[i] or '∅'} | peer {peer[i] or '∅'}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
