"""`rnnpipe compare APP [RUN ...]`: an application's runs side by side.

Each row is one pipeline run from the metadata store: when it started, how it ended, what it did for the
served model (pushed, not blessed, unchanged, failed), the gate's primary metric beside its baseline and
the champion it was judged against. Below the rows: the config keys whose values differ between the runs
(from the runs' MLflow params, which are the resolved config), and the MLflow UI's comparison view of
the same runs. Works for every application: nothing here names a stage or a metric.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from pathlib import Path
from typing import Any

from .errors import ConfigError

MISSING = "-"


def primary_metric(metrics: dict[str, dict]) -> tuple[str, dict] | None:
    """The first step whose metrics carry a primary metric, with them; None when no step has one."""
    return next(((step, m) for step, m in metrics.items() if "primary_metric" in m), None)


def run_outcome(metrics: dict[str, dict], cache_hits: list[str]) -> str:
    """What a run did for the served model: pushed (a new version), not_blessed (the gate held the model back)
    or unchanged (the push was a cache hit, or the model was already served)."""
    for step, m in metrics.items():
        if m.get("pushed") == 1 and not m.get("already_served") and step not in cache_hits:
            return "pushed"
        if m.get("pushed") == 0 and "same_as_version" not in m:
            return "not_blessed"
    return "unchanged"


def select_runs(rows: list[dict], wanted: list[str]) -> list[dict]:
    """The rows whose run id (or MLflow run id) starts with each of ``wanted``, in that order; a ConfigError
    names a prefix that matches no run or more than one."""
    chosen = []
    for prefix in wanted:
        found = [r for r in rows if r["id"].startswith(prefix) or (r["mlflow_run_id"] or "").startswith(prefix)]
        if len(found) != 1:
            what = "no run" if not found else f"{len(found)} runs ({', '.join(r['id'][:8] for r in found)})"
            raise ConfigError(f"run {prefix!r} matches {what}; `rnnpipe runs APP` lists the run ids")
        chosen.append(found[0])
    return chosen


def describe(row: dict, params: dict[str, str]) -> dict[str, Any]:
    """One run as the table shows it (also what `--json` prints)."""
    found = primary_metric(row["metrics"])
    gate = found[1] if found else {}
    ended = "failed" if row["status"] not in ("COMPLETE", "OPEN") else None
    return {
        "run_id": row["id"], "mlflow_run_id": row["mlflow_run_id"],
        "started": dt.datetime.fromtimestamp(row["started_at"]).strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(row["finished_at"] - row["started_at"], 1) if row.get("finished_at") else None,
        "status": row["status"], "outcome": ended or run_outcome(row["metrics"], row["cache_hits"]),
        "metric": gate.get("primary_metric"), "value": gate.get("primary_value"),
        "baseline": gate.get("primary_baseline"), "champion": gate.get("primary_champion"),
        "higher_is_better": gate.get("higher_is_better"), "params": params,
    }


def differing_params(runs: list[dict]) -> dict[str, list[str]]:
    """The config keys whose values are not the same in every run (a key a run lacks shows as '-')."""
    keys = sorted({k for r in runs for k in r["params"]})
    values = {k: [r["params"].get(k, MISSING) for r in runs] for k in keys}
    return {k: v for k, v in values.items() if len(set(v)) > 1}


def compare_url(ui: str, experiment_id: str | None, mlflow_run_ids: list[str]) -> str | None:
    """The MLflow UI's comparison view of these runs."""
    if not experiment_id or not mlflow_run_ids:
        return None
    compact = {"separators": (",", ":")}
    query = urllib.parse.urlencode({"runs": json.dumps(mlflow_run_ids, **compact),
                                    "experiments": json.dumps([experiment_id], **compact)})
    return f"{ui.rstrip('/')}/#/compare-runs?{query}"


def _number(value: Any) -> str:
    return MISSING if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def render(runs: list[dict], url: str | None) -> str:
    """The table, the differing config keys and the link, as `rnnpipe compare` prints them."""
    metric = next((r["metric"] for r in runs if r["metric"]), None) or "primary"
    header = ["run", "started", "status", "outcome", metric, "baseline", "champion"]
    cells = [[r["run_id"][:8], r["started"], r["status"], r["outcome"], _number(r["value"]),
              _number(r["baseline"]), _number(r["champion"])] for r in runs]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *cells]]
    direction = next((r["higher_is_better"] for r in runs if r["higher_is_better"] is not None), None)
    if direction is not None:
        lines.append(f"({metric}: {'higher' if direction else 'lower'} is better)")
    diffs = differing_params(runs)
    if len(runs) > 1:
        lines.append("config keys that differ:" if diffs else "config: the same in every run")
        width = max((len(k) for k in diffs), default=0)
        lines += [f"  {k.ljust(width)}  {' | '.join(v)}" for k, v in diffs.items()]
    if url:
        lines.append(f"MLflow comparison (with `rnnpipe ui` running): {url}")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> Path:
    """The primary metric over the runs, oldest first, beside each run's baseline; pushed runs marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = sorted(runs, key=lambda r: r["started"])
    x = range(len(ordered))
    figure = Figure(figsize=(max(5.0, 0.7 * len(ordered) + 2), 3.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values = [r["value"] if r["value"] is not None else float("nan") for r in ordered]
    axes.plot(x, values, "o-", label="model")
    axes.plot(x, [r["baseline"] if r["baseline"] is not None else float("nan") for r in ordered], "s--",
              color="grey", label="baseline")
    pushed = [i for i, r in enumerate(ordered) if r["outcome"] == "pushed"]
    axes.plot(pushed, [values[i] for i in pushed], "*", markersize=14, color="tab:green", label="pushed")
    axes.set_xticks(list(x), [r["run_id"][:8] for r in ordered], rotation=45, ha="right")
    metric = next((r["metric"] for r in ordered if r["metric"]), "primary metric")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} over runs")
    axes.legend()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    tmp.replace(path)  # a reader never sees half a PNG
    return path
