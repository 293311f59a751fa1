"""Compares rules for what the ETS hybrid serves on short series (the network's share, Theta's and Holt-Winters'
weights) on the same trained networks: for each run folder (`short_series_runs.py --keep DIR` or
`judge_short_series.py --keep DIR`), the Trainer's model forecasts every train, eval and test window at each share
corner, and each rule's test MASE is the Evaluator's ETS MASE times the ratio of test errors (the scale is global,
so the ratio in normalized units is the ratio in the series' own).

    .venv/bin/python benchmarks/share_rules.py DIR

Rules: "now" (`models.choose_correction_share`: Theta of the whole series among the alternatives, their weight
against ETS the mean of the eval split's and all held-out windows', the one-standard-error share of the network)
and "before" (the rule of session 36: Theta and Holt-Winters of the window only, weighted against ETS on the
training and eval windows together; the same share of the network).
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


def corners(run: Path) -> dict[str, tuple]:
    """Per split, ``(targets, forecast at all shares 0, {share: forecast at it alone at 1})``,
    ``[windows, horizon]`` each, as `models.choose_correction_share` computes them."""
    import keras
    import tensorflow_transform as tft

    from rnnpipe.components.training import make_dataset
    from rnnpipe.models.forecaster import SHARES, _forecasts_at
    from rnnpipe.pipelines.forecasting.model import SERIES_TASK

    root = run / "pipeline_root" / "forecasting"
    transform = latest(root / "Transform")
    tft_output = tft.TFTransformOutput(str(transform / "transform_graph"))
    model = keras.models.load_model(latest(root / "Trainer") / "model_run" / "model.keras")
    names = [n for n in SHARES if any(layer.name == n for layer in model.layers)]
    layers = {n: model.get_layer(n) for n in names}
    at = [{n: 0.0 for n in names}] + [{m: float(m == n) for m in names} for n in names]
    out = {}
    for split in ("train", "eval", "test"):
        data = make_dataset(str(transform / "transformed_examples" / f"Split-{split}" / "*"), tft_output,
                            SERIES_TASK, batch_size=256, training=False, bucket_boundaries=[], seed=0,
                            shuffle_buffer=1)
        y, origin, *units = _forecasts_at(model, layers, at, data)
        out[split] = (y, origin, dict(zip(names, units, strict=True)))
    return out


def before(d: dict[str, tuple], steps: int = 20) -> dict[str, float]:
    """The rule before: the window's alternatives and ETS weighted together on the training and eval windows."""
    from rnnpipe.models import inverse_error_weights
    from rnnpipe.models.forecaster import one_standard_error_share, window_errors

    alternatives = [n for n in ("theta_share", "alternative_share") if n in d["eval"][2]]

    def held_out(shares: dict[str, float]) -> float:
        return float(np.concatenate([window_errors(*d[s], shares) for s in ("train", "eval")]).mean())

    weights = inverse_error_weights([held_out({})] + [held_out({n: 1.0}) for n in alternatives])
    chosen = {n: float(w) for n, w in zip(alternatives, weights[1:], strict=True)}
    y = d["eval"][0]
    spans = (len(y) + y.shape[1] - 1) / y.shape[1]
    errors = {i / steps: window_errors(*d["eval"], {**chosen, "correction_share": i / steps})
              for i in range(steps + 1)}
    return {**chosen, "correction_share": one_standard_error_share(errors, spans) if spans >= 2 else 0.0}


def now(d: dict[str, tuple]) -> dict[str, float]:
    from rnnpipe.models.forecaster import SHARES, shares_from_forecasts

    chosen = shares_from_forecasts(*d["eval"], d["train"])
    return {n: chosen[n] for n in SHARES if n in chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a folder of run folders, one per series")
    args = parser.parse_args()
    from rnnpipe.models.forecaster import window_errors

    rules = {"now": now, "before": before}
    print(f"{'series':26s}" + "".join(f"{k:>9s}" for k in (*rules, "ETS", "Theta", "s-naive")) + "   network share")
    table = []
    for run in sorted(p for p in args.runs.iterdir() if (p / "pipeline_root").is_dir()):
        evaluator = latest(run / "pipeline_root" / "forecasting" / "Evaluator")
        overall = json.loads((evaluator / "evaluation" / "evaluation.json").read_text())["overall"]
        d = corners(run)
        chosen = {name: choose(d) for name, choose in rules.items()}
        ets_error = window_errors(*d["test"], {}).mean()
        row = {name: overall["peer/ets"]["mase"] * window_errors(*d["test"], shares).mean() / ets_error
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
