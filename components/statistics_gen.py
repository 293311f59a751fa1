"""StatisticsGen: per-split, per-feature statistics computed in one full pass on Beam.

For every feature: how many examples have it, how many values per example, and by kind numeric
min/max/mean/std/quantiles and NaN/inf counts, or string top-k, unique count and token-length
distribution (whitespace tokens, what the sequence length of a text feature will roughly be).
Quantiles, histograms and integer value counts come from tfx_bsl's mergeable sketches (QuantilesSketch,
MisraGriesSketch, KmvSketch), so statistics do not depend on how Beam splits the input. Beside the JSON the
stage writes tensorflow-metadata's ``DatasetFeatureStatisticsList`` (``FeatureStats.pb``), which TFDV and
Facets read.

Per split it also counts exact duplicates: each example's features are hashed one by one (8 bytes each),
and the hashes are kept beside the statistics (``<split>.hashes.npz``). ``duplicates`` in a split's
statistics counts its records that repeat an earlier record of the split (``within``) and its records
whose whole content also occurs in another split (``shared``); the ExampleValidator recounts over the
features the model reads, so an id column does not hide a sentence that is in both train and test.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx_bsl.sketches import KmvSketch, MisraGriesSketch, QuantilesSketch

from rnnpipe.artifacts import Examples, ExampleStatistics
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param

_EPS = 0.001  # the quantiles sketch's rank error: a quantile is off by at most 0.1% of the values
_INT_BUCKETS = 1_000  # integer values counted by Misra-Gries: exact up to this many distinct values
_MAX_STRINGS = 50_000  # distinct strings tracked exactly before the tail is trimmed
_KEPT = 1_000  # evenly spaced quantiles kept in the statistics artifact for drift checks
_HASHES_KEY = "content_hashes"  # how the hashes travel out of Beam inside the JSON, popped before it is kept


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
        _add_hashes(acc["hashes"], acc["examples"], example.features.feature)
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
            _merge_hashes(out["hashes"], out["examples"], acc["hashes"], acc["examples"])
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
        return {**summarize(acc), _HASHES_KEY: encode_hashes(acc["hashes"], acc["examples"])}


def feature_hash(feat: Any) -> int:
    """8 bytes of the feature's serialized values (a Feature has one list: its encoding is deterministic)."""
    return int.from_bytes(hashlib.blake2b(feat.SerializeToString(), digest_size=8).digest(), "little") or 1


def _add_hashes(columns: dict[str, list[int]], row: int, features: Any) -> None:
    for name, feat in features.items():
        if name not in columns:
            columns[name] = [0] * row
        columns[name].append(feature_hash(feat))
    for column in columns.values():
        if len(column) == row:  # this example lacks the feature
            column.append(0)


def _merge_hashes(into: dict[str, list[int]], rows: int, other: dict[str, list[int]], other_rows: int) -> None:
    for name in into.keys() | other.keys():
        into[name] = into.get(name, [0] * rows) + other.get(name, [0] * other_rows)


def encode_hashes(columns: dict[str, list[int]], rows: int) -> dict:
    names = sorted(columns)
    matrix = np.array([columns[n] for n in names], dtype=np.uint64).reshape(len(names), rows).T
    return {"names": names, "rows": rows, "data": base64.b64encode(np.ascontiguousarray(matrix).tobytes()).decode()}


def decode_hashes(encoded: dict) -> tuple[list[str], np.ndarray]:
    matrix = np.frombuffer(base64.b64decode(encoded["data"]), dtype=np.uint64)
    return encoded["names"], matrix.reshape(encoded["rows"], len(encoded["names"]))


def record_hashes(names: list[str], matrix: np.ndarray, features: list[str] | None = None) -> np.ndarray:
    """One hash per record over ``features`` (None = every feature; a feature the split lacks counts as absent)."""
    wanted = sorted(names if features is None else features)
    columns = [matrix[:, names.index(n)] if n in names else np.zeros(len(matrix), np.uint64) for n in wanted]
    rows = np.ascontiguousarray(np.stack(columns, axis=1) if columns else np.zeros((len(matrix), 0), np.uint64))
    return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                     for r in rows], dtype=np.uint64)


def count_duplicates(hashes: dict[str, tuple[list[str], np.ndarray]], features: list[str] | None = None
                     ) -> dict[str, dict]:
    """Per split: ``within``, records that repeat an earlier record of the same split, and ``shared``
    (other split -> how many of this split's records also occur there), comparing ``features`` only."""
    per_record = {s: record_hashes(names, m, features) for s, (names, m) in hashes.items()}
    out = {}
    for split, h in per_record.items():
        shared = {other: int(np.isin(h, g).sum()) for other, g in per_record.items() if other != split}
        out[split] = {"within": int(len(h) - len(np.unique(h))), "shared": shared}
    return out


def feature_stats_proto(stats: dict[str, dict]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """The statistics as tensorflow-metadata's DatasetFeatureStatisticsList, one dataset per split."""
    out = statistics_pb2.DatasetFeatureStatisticsList()
    types = {"INT": statistics_pb2.FeatureNameStatistics.INT, "FLOAT": statistics_pb2.FeatureNameStatistics.FLOAT,
             "BYTES": statistics_pb2.FeatureNameStatistics.STRING}
    for split, s in stats.items():
        dataset = out.datasets.add(name=split, num_examples=s["num_examples"])
        for name, f in s["features"].items():
            feature = dataset.features.add(type=types.get(f["type"], statistics_pb2.FeatureNameStatistics.BYTES))
            feature.path.step.append(name)
            common = statistics_pb2.CommonStatistics(
                num_non_missing=f["present"], num_missing=f["missing"], min_num_values=f["min_values"] or 0,
                max_num_values=f["max_values"], avg_num_values=f["avg_values"],
                tot_num_values=round(f["avg_values"] * f["present"]))
            if f["type"] == "BYTES":
                strings = feature.string_stats
                strings.common_stats.CopyFrom(common)
                strings.unique = f["unique"]
                for value, count in f["top_values"]:
                    strings.top_values.add(value=value, frequency=count)
                continue
            numbers = feature.num_stats
            numbers.common_stats.CopyFrom(common)
            numbers.mean, numbers.std_dev = f["mean"], f["std"]
            if f["min"] is not None:
                numbers.min, numbers.max, numbers.median = f["min"], f["max"], f["quantiles"].get("0.5", 0.0)
            grid = f["sample"]
            if len(grid) > 1:  # a quantiles histogram: each bucket holds an equal share of the values
                histogram = numbers.histograms.add(type=statistics_pb2.Histogram.QUANTILES, num_nan=f["nan"])
                share = f["present"] * f["avg_values"] / (len(grid) - 1)
                for low, high in zip(grid[:-1], grid[1:], strict=True):
                    histogram.buckets.add(low_value=low, high_value=high, sample_count=share)
    return out


def _keep_hashes(out: Path, stats: dict[str, dict], splits: list[str]) -> None:
    """Moves the hashes out of each statistics JSON into ``<split>.hashes.npz`` and adds the duplicate counts."""
    hashes = {}
    for name, s in stats.items():
        names, matrix = decode_hashes(s.pop(_HASHES_KEY))
        if name in splits:
            hashes[name] = (names, matrix)
            ExampleStatistics.write_hashes(out, name, names, matrix)
    for split, counts in count_duplicates(hashes).items():
        stats[split]["duplicates"] = counts
    for name, s in stats.items():
        ExampleStatistics.write(out, name, s)


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


def run_statistics_gen(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                       ctx: ExecutionContext) -> dict:
    examples = inputs["examples"]
    info = Examples.read_info(examples)
    # name -> file pattern; the previous span (if ExampleGen found one) is summarized for drift checks
    sources = {s: Examples.file_pattern(examples, s) for s in info.splits}
    for s in (info.previous_span or {}).get("counts", {}):
        sources[f"{ExampleStatistics.PREVIOUS_PREFIX}{s}"] = Examples.file_pattern(Examples.previous_span(examples), s)
    out = outputs["statistics"].path()
    ctx.log(f"Beam pipeline over {list(sources)} ({ctx.beam_args[0]})")
    with beam.Pipeline(options=PipelineOptions(ctx.beam_args)) as p:
        for name, pattern in sources.items():
            _ = (p
                 | f"Read[{name}]" >> beam.io.ReadFromTFRecord(pattern)
                 | f"Stats[{name}]" >> beam.CombineGlobally(ExampleStatsFn())
                 | f"Json[{name}]" >> beam.Map(json.dumps)
                 | f"Write[{name}]" >> beam.io.WriteToText(str(ExampleStatistics.split_file(out, name)),
                                                               shard_name_template=""))
    stats = {s: json.loads(ExampleStatistics.split_file(out, s).read_text()) for s in sources}
    splits = info.splits
    _keep_hashes(out, stats, splits)
    ExampleStatistics.write_proto(out, feature_stats_proto(stats))
    summary = out / "summary.txt"
    summary.write_text(render_text(stats))
    ctx.tracker.log_artifact(summary, "statistics")
    page = out / "statistics.html"
    page.write_text(render_html(stats))
    ctx.tracker.log_artifact(page, "statistics")
    return {f"{s}_examples": stats[s]["num_examples"] for s in splits}


def render_text(stats: dict[str, dict]) -> str:
    lines = []
    for split, s in stats.items():
        lines.append(f"== {split}: {s['num_examples']} examples{_duplicates_text(s)}")
        for name, f in s["features"].items():
            desc = f"  {name:<16} {f['type']:<5} missing {f['missing_fraction']:.1%}"
            if f["type"] == "BYTES":
                desc += f" unique {f['unique']} tokens mean {f['token_length'].get('mean', 0):.1f} " \
                        f"p99 {f['token_length'].get('0.99')} top {f['top_values'][:3]}"
            else:
                desc += f" min {f['min']} max {f['max']} mean {f['mean']:.3g} std {f['std']:.3g} nan {f['nan']}"
            lines.append(desc)
    return "\n".join(lines) + "\n"


def _duplicates_text(s: dict) -> str:
    d = s.get("duplicates")
    if not d:
        return ""
    shared = ", ".join(f"{n} also in {other}" for other, n in d["shared"].items())
    return f"; {d['within']} exact duplicates within the split" + (f", {shared}" if shared else "")


def render_html(stats: dict[str, dict]) -> str:
    """One table per split, readable in MLflow's artifact viewer."""
    parts = ["<html><head><meta charset='utf-8'><style>table{border-collapse:collapse;font:13px sans-serif}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}</style></head><body>"]
    for split, s in stats.items():
        parts.append(f"<h3>{html.escape(split)}: {s['num_examples']} examples</h3>"
                     f"<p>{html.escape(_duplicates_text(s).strip('; '))}</p><table><tr><th>feature</th>"
                     "<th>type</th><th>missing</th><th>values / example</th><th>distribution</th></tr>")
        for name, f in s["features"].items():
            if f["type"] == "BYTES":
                tl = f["token_length"]
                dist = (f"{f['unique']} unique; tokens mean {tl.get('mean', 0):.1f}, median {tl.get('0.5')}, "
                        f"p99 {tl.get('0.99')}; top: " + ", ".join(f"{html.escape(str(v))[:40]} ({c})"
                                                                    for v, c in f["top_values"][:5]))
            else:
                q = f["quantiles"]
                dist = (f"min {f['min']} / p25 {q.get('0.25')} / median {q.get('0.5')} / p75 {q.get('0.75')} / "
                        f"max {f['max']}; mean {f['mean']:.4g}, std {f['std']:.4g}; NaN {f['nan']}, inf {f['inf']}")
            parts.append(f"<tr><td>{html.escape(name)}</td><td>{f['type']}</td><td>{f['missing_fraction']:.1%}</td>"
                         f"<td>{f['min_values']}–{f['max_values']}</td><td>{dist}</td></tr>")
        parts.append("</table>")
    return "".join(parts) + "</body></html>\n"


class StatisticsGen(Component):
    INPUTS = {"examples": Examples.TYPE}
    OUTPUTS = {"statistics": ExampleStatistics.TYPE}
    PARAMETERS: dict[str, Param] = {}
    executor = staticmethod(run_statistics_gen)
