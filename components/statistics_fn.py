"""The Beam CombineFn that accumulates a split's statistics (StatisticsGen's executor runs it).

Quantiles, histograms and integer value counts come from tfx_bsl's mergeable sketches (QuantilesSketch,
MisraGriesSketch, KmvSketch), so the statistics do not depend on how Beam splits the input. Apart from
the StatisticsGen contract, so that building a pipeline does not import Beam.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from tfx_bsl.sketches import KmvSketch, MisraGriesSketch, QuantilesSketch

from .content_hashes import HASHES_KEY, add_hashes, encode_hashes, merge_hashes

_EPS = 0.001  # the quantiles sketch's rank error: a quantile is off by at most 0.1% of the values
_INT_BUCKETS = 1_000  # integer values counted by Misra-Gries: exact up to this many distinct values
_MAX_STRINGS = 50_000  # distinct strings tracked exactly before the tail is trimmed
_KEPT = 1_000  # evenly spaced quantiles kept in the statistics artifact for drift checks


def _new_feature() -> dict:
    return {"present": 0, "values": 0, "min_values": None, "max_values": 0, "kind": None,
            "num": {"n": 0, "sum": 0.0, "sumsq": 0.0, "min": math.inf, "max": -math.inf, "nan": 0, "inf": 0,
                    "quantiles": None, "ints": None, "distinct": None},  # sketches, made on the first number
            "strings": Counter(), "token_lengths": Counter()}


class ExampleStatsFn(beam.CombineFn):
    """Accumulates statistics of serialized tf.Examples; accumulators merge, so it scales out."""

    def create_accumulator(self) -> dict:
        # hashes: feature -> one 8-byte content hash per example so far (0 where the example lacks it)
        return {"examples": 0, "features": {}, "hashes": {}}

    def add_input(self, acc: dict, serialized: bytes) -> dict:
        import tensorflow as tf

        example = tf.train.Example.FromString(serialized)
        add_hashes(acc["hashes"], acc["examples"], example.features.feature)
        acc["examples"] += 1
        for name, feat in example.features.feature.items():
            f = acc["features"].setdefault(name, _new_feature())
            kind = feat.WhichOneof("kind")
            values = list(getattr(feat, kind).value) if kind else []
            f["kind"] = {"bytes_list": "BYTES", "int64_list": "INT", "float_list": "FLOAT"}.get(kind, f["kind"])
            f["present"] += 1
            f["values"] += len(values)
            f["min_values"] = len(values) if f["min_values"] is None else min(f["min_values"], len(values))
            f["max_values"] = max(f["max_values"], len(values))
            if kind == "bytes_list":
                for v in values:
                    text = v.decode("utf-8", "replace")
                    f["strings"][text] += 1
                    f["token_lengths"][len(text.split())] += 1
                self._trim(f)
            else:
                self._add_numbers(f["num"], values, kind == "int64_list")
        return acc

    @staticmethod
    def _add_numbers(num: dict, values: list, integers: bool) -> None:
        if not values:
            return
        array = np.asarray(values, dtype=np.float64)
        nan, inf = np.isnan(array), np.isinf(array)
        num["nan"] += int(nan.sum())
        num["inf"] += int(inf.sum())
        finite = array[~(nan | inf)]
        if not len(finite):
            return
        num["n"] += len(finite)
        num["sum"] += float(finite.sum())
        num["sumsq"] += float(np.square(finite).sum())
        num["min"], num["max"] = min(num["min"], float(finite.min())), max(num["max"], float(finite.max()))
        if num["quantiles"] is None:
            num["quantiles"] = QuantilesSketch(_EPS, 1 << 32, 1)
        num["quantiles"].AddValues(pa.array(finite))
        if integers:
            if num["ints"] is None:
                num["ints"], num["distinct"] = MisraGriesSketch(_INT_BUCKETS), KmvSketch(1024)
            keys = pa.array([str(v) for v in values], type=pa.large_binary())
            num["ints"].AddValues(keys)
            num["distinct"].AddValues(keys)

    @staticmethod
    def _trim(f: dict) -> None:
        if len(f["strings"]) > _MAX_STRINGS:
            f["strings"] = Counter(dict(f["strings"].most_common(_MAX_STRINGS // 2)))
            f["strings_trimmed"] = True

    def merge_accumulators(self, accs: Any) -> dict:
        out = self.create_accumulator()
        for acc in accs:
            merge_hashes(out["hashes"], out["examples"], acc["hashes"], acc["examples"])
            out["examples"] += acc["examples"]
            for name, f in acc["features"].items():
                g = out["features"].setdefault(name, _new_feature())
                g["kind"] = g["kind"] or f["kind"]
                g["present"] += f["present"]
                g["values"] += f["values"]
                if f["min_values"] is not None:
                    g["min_values"] = min(v for v in (g["min_values"], f["min_values"]) if v is not None)
                g["max_values"] = max(g["max_values"], f["max_values"])
                for k in ("n", "sum", "sumsq", "nan", "inf"):
                    g["num"][k] += f["num"][k]
                g["num"]["min"] = min(g["num"]["min"], f["num"]["min"])
                g["num"]["max"] = max(g["num"]["max"], f["num"]["max"])
                for k in ("quantiles", "ints", "distinct"):  # sketches merge without bias, whatever the split
                    if g["num"][k] is None:
                        g["num"][k] = f["num"][k]
                    elif f["num"][k] is not None:
                        g["num"][k].Merge(f["num"][k])
                g["strings"].update(f["strings"])
                g["token_lengths"].update(f["token_lengths"])
                g["strings_trimmed"] = g.get("strings_trimmed", False) or f.get("strings_trimmed", False)
                self._trim(g)
        return out

    def extract_output(self, acc: dict) -> dict:
        return {**summarize(acc), HASHES_KEY: encode_hashes(acc["hashes"], acc["examples"])}


_QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)


def _quantiles(values: list[float], qs: tuple[float, ...] = _QUANTILES) -> dict:
    """Quantiles of an exact list of values (token lengths)."""
    if not values:
        return {}
    s = sorted(values)
    return {str(q): s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] for q in qs}


def _grid(num: dict) -> list[float]:
    """``_KEPT`` + 1 evenly spaced quantiles (min to max) of the sketch: each stands for 1/_KEPT of the values."""
    if num["quantiles"] is None:
        return []
    return [float(v) for v in num["quantiles"].GetQuantiles(_KEPT).flatten().to_numpy()]


def _histogram(grid: list[float], bins: int = 10) -> dict:
    """Equal-width histogram from the quantile grid: edges and the (approximate) fraction in each bin."""
    if not grid:
        return {}
    lo, hi = grid[0], grid[-1]
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in grid:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return {"edges": [lo + i * width for i in range(bins + 1)], "fractions": [c / len(grid) for c in counts]}


def _int_counts(num: dict, top_k: int) -> tuple[int, list[list]] | None:
    """(distinct values, [[value, count], ...]) of an integer feature with at most ``top_k`` distinct values."""
    if num["distinct"] is None:
        return None
    distinct = int(num["distinct"].Estimate())
    if distinct > top_k:
        return distinct, []
    estimate = num["ints"].Estimate()
    values = [int(v) for v in estimate.field("values").to_pylist()]
    counts = [int(c) for c in estimate.field("counts").to_pylist()]
    return distinct, sorted(([v, c] for v, c in zip(values, counts, strict=True)), key=lambda vc: (-vc[1], vc[0]))


def summarize(acc: dict, top_k: int = 20) -> dict:
    n = acc["examples"]
    features = {}
    for name, f in sorted(acc["features"].items()):
        out: dict[str, Any] = {
            "type": f["kind"], "present": f["present"], "missing": n - f["present"],
            "missing_fraction": (n - f["present"]) / n if n else 0.0,
            "min_values": f["min_values"], "max_values": f["max_values"],
            "avg_values": f["values"] / f["present"] if f["present"] else 0.0,
        }
        if f["kind"] == "BYTES":
            lengths = [length for length, c in f["token_lengths"].items() for _ in range(c)]
            out.update({
                "unique": len(f["strings"]), "unique_is_lower_bound": bool(f.get("strings_trimmed")),
                "top_values": [[v, c] for v, c in f["strings"].most_common(top_k)],
                "top_values_of": f["values"],  # counts are exact, out of every value
                "token_length": {"mean": sum(lengths) / len(lengths) if lengths else 0.0, **_quantiles(lengths)},
            })
        else:
            num = f["num"]
            mean = num["sum"] / num["n"] if num["n"] else 0.0
            var = max(0.0, num["sumsq"] / num["n"] - mean * mean) if num["n"] else 0.0
            grid = _grid(num)
            out.update({"min": num["min"] if num["n"] else None, "max": num["max"] if num["n"] else None,
                        "mean": mean, "std": math.sqrt(var), "nan": num["nan"], "inf": num["inf"],
                        "quantiles": {str(q): grid[round(q * _KEPT)] for q in _QUANTILES} if grid else {},
                        "histogram": _histogram(grid),
                        # evenly spaced quantiles, equally weighted: what the drift check histograms
                        "sample": grid})
            counted = _int_counts(num, top_k) if f["kind"] == "INT" else None
            if counted is not None:
                out["unique"] = counted[0]
                if counted[1]:  # exact counts (Misra-Gries with more buckets than values), out of every value
                    out["top_values"], out["top_values_of"] = counted[1], num["n"]
        features[name] = out
    return {"num_examples": n, "features": features}
