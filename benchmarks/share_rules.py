"""Compares rules for what the ETS hybrid serves on short series (the network's share, Theta's and Holt-Winters'
weights) on the same trained networks: for each run folder (`short_series_runs.py --keep DIR` or
`judge_short_series.py --keep DIR`), the Trainer's model forecasts every train, eval and test window at each share
corner, and each rule's test MASE is the Evaluator's ETS MASE times the ratio of test errors (the scale is global,
so the ratio in normalized units is the ratio in the series' own).

    .venv/bin/python benchmarks/share_rules.py DIR

Rules: "now" (`models.choose_correction_share`: the eighth power, the one-standard-error share, none under two
horizons of eval values) and "before" (the fourth power, the share of lowest eval error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def latest(folder: Path) -> Path:
    return max(folder.glob("[0-9]*"), key=lambda p: int(p.name))


def corners(run: Path) -> dict[str, np.ndarray]:
    """``{split}_y`` and ``{split}_{corner}`` (``base`` and each share at 1), ``[windows, horizon]``."""
    import keras
    import tensorflow_transform as tft

    from rnnpipe.components.training import make_dataset
    from rnnpipe.models.forecaster import SHARES
    from rnnpipe.pipelines.forecasting.model import SERIES_TASK

    root = run / "pipeline_root" / "forecasting"
    transform = latest(root / "Transform")
    tft_output = tft.TFTransformOutput(str(transform / "transform_graph"))
    model = keras.models.load_model(latest(root / "Trainer") / "model_run" / "model.keras")
    names = [n for n in SHARES if any(layer.name == n for layer in model.layers)]
    out: dict[str, np.ndarray] = {}
    for split in ("train", "eval", "test"):
        data = make_dataset(str(transform / "transformed_examples" / f"Split-{split}" / "*"), tft_output,
                            SERIES_TASK, batch_size=256, training=False, bucket_boundaries=[], seed=0,
                            shuffle_buffer=1)
        parts: dict[str, list] = {"y": []}
        for inputs, targets in data:
            parts["y"].append(targets.numpy())
            for corner in ["base", *names]:
                for n in names:
                    model.get_layer(n).share.assign(float(n == corner))
                parts.setdefault(corner, []).append(keras.ops.convert_to_numpy(model(inputs, training=False)))
        out.update({f"{split}_{k}": np.concatenate(v) for k, v in parts.items()})
    return out


def forecast(d: dict, split: str, shares: dict[str, float]) -> np.ndarray:
    base = d[f"{split}_base"]
    return base + sum(s * (d[f"{split}_{n}"] - base) for n, s in shares.items())


def window_errors(d: dict, split: str, shares: dict[str, float]) -> np.ndarray:
    return np.abs(forecast(d, split, shares) - d[f"{split}_y"]).mean(axis=1)


def rule(d: dict, power: float, one_standard_error: bool, steps: int = 20) -> dict[str, float]:
    from rnnpipe.models import inverse_error_weights
    from rnnpipe.models.forecaster import one_standard_error_share

    alternatives = [n for n in ("theta_share", "alternative_share") if f"eval_{n}" in d]

    def held_out(shares: dict[str, float]) -> float:
        return float(np.concatenate([window_errors(d, s, shares) for s in ("train", "eval")]).mean())

    weights = inverse_error_weights([held_out({})] + [held_out({n: 1.0}) for n in alternatives], power)
    chosen = {n: float(w) for n, w in zip(alternatives, weights[1:], strict=True)}
    per_window = {i / steps: window_errors(d, "eval", {**chosen, "correction_share": i / steps})
                  for i in range(steps + 1)}
    windows, horizon = d["eval_y"].shape
    spans = (windows + horizon - 1) / horizon
    if one_standard_error:
        share = one_standard_error_share(per_window, spans) if spans >= 2 else 0.0
    else:
        share = min(per_window, key=lambda s: per_window[s].mean())
    return {**chosen, "correction_share": share}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a folder of run folders, one per series")
    args = parser.parse_args()
    rules = {"now": (8.0, True), "before": (4.0, False)}
    print(f"{'series':26s}" + "".join(f"{k:>9s}" for k in (*rules, "ETS", "Theta", "s-naive")) + "   network share")
    table = []
    for run in sorted(p for p in args.runs.iterdir() if (p / "pipeline_root").is_dir()):
        evaluator = latest(run / "pipeline_root" / "forecasting" / "Evaluator")
        overall = json.loads((evaluator / "evaluation" / "evaluation.json").read_text())["overall"]
        d = corners(run)
        chosen = {name: rule(d, *args_) for name, args_ in rules.items()}
        ets_error = window_errors(d, "test", {}).mean()
        row = {name: overall["peer/ets"]["mase"] * window_errors(d, "test", shares).mean() / ets_error
               for name, shares in chosen.items()}
        row.update({"ETS": overall["peer/ets"]["mase"], "Theta": overall["peer/theta"]["mase"],
                    "s-naive": overall["baseline"]["mase"]})
        table.append(row)
        print(f"{run.name:26s}" + "".join(f"{v:9.3f}" for v in row.values())
              + "   " + " / ".join(f"{c['correction_share']:.2f}" for c in chosen.values()), flush=True)
    means = {k: np.mean([r[k] for r in table]) for k in table[0]}
    print(f"{'mean':26s}" + "".join(f"{v:9.3f}" for v in means.values()))
    for name in rules:
        print(f"{name}: at least as good as ETS on {sum(r[name] <= r['ETS'] for r in table)} of {len(table)}, more "
              f"than 5 % behind it on {sum(r[name] > 1.05 * r['ETS'] for r in table)}")


if __name__ == "__main__":
    main()
