"""StatisticsGen: per-split, per-feature statistics computed in one full pass on Beam.

For every feature: how many examples have it, how many values per example, and by kind numeric
min/max/mean/std/quantiles and NaN/inf counts, or string top-k, unique count and token-length
distribution (whitespace tokens, what the sequence length of a text feature will roughly be).

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
import random
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from rnnpipe.dsl import Artifact, Component, Param

from .example_gen import PREVIOUS_SPAN
from .example_io import file_pattern

PREVIOUS_PREFIX = "previous_span-"  # statistics of the span before the latest: previous_span-<split>.json

_SAMPLE = 10_000   # numeric values kept for quantiles (reservoir)
_MAX_STRINGS = 50_000  # distinct strings tracked exactly before the tail is trimmed
_KEPT = 1_000  # numeric values kept in the statistics artifact for drift checks
HASHES_SUFFIX = ".hashes.npz"  # <split>.hashes.npz: per-record, per-feature content hashes
_HASHES_KEY = "content_hashes"  # how the hashes travel out of Beam inside the JSON, popped before it is kept


def _new_feature() -> dict:
    return {"present": 0, "values": 0, "min_values": None, "max_values": 0, "kind": None,
            "num": {"n": 0, "sum": 0.0, "sumsq": 0.0, "min": math.inf, "max": -math.inf, "nan": 0, "inf": 0,
                    "sample": [], "seen": 0},
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
                self._add_numbers(f["num"], values)
        return acc

    @staticmethod
    def _add_numbers(num: dict, values: list) -> None:
        for v in values:
            v = float(v)
            if math.isnan(v):
                num["nan"] += 1
                continue
            if math.isinf(v):
                num["inf"] += 1
                continue
            num["n"] += 1
            num["sum"] += v
            num["sumsq"] += v * v
            num["min"], num["max"] = min(num["min"], v), max(num["max"], v)
            num["seen"] += 1
            if len(num["sample"]) < _SAMPLE:
                num["sample"].append(v)
            else:  # reservoir sampling keeps quantiles unbiased in bounded memory
                j = random.Random(num["seen"]).randrange(num["seen"])
                if j < _SAMPLE:
                    num["sample"][j] = v

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
                for k in ("n", "sum", "sumsq", "nan", "inf", "seen"):
                    g["num"][k] += f["num"][k]
                g["num"]["min"] = min(g["num"]["min"], f["num"]["min"])
                g["num"]["max"] = max(g["num"]["max"], f["num"]["max"])
                g["num"]["sample"] = (g["num"]["sample"] + f["num"]["sample"])[:_SAMPLE]
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


def load_hashes(artifact: Artifact | Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """The per-feature content hashes of every current split (not the previous span's)."""
    root = artifact.path() if isinstance(artifact, Artifact) else Path(artifact)
    out = {}
    for p in sorted(root.glob(f"*{HASHES_SUFFIX}")):
        split = p.name[:-len(HASHES_SUFFIX)]
        if not split.startswith(PREVIOUS_PREFIX):
            with np.load(p) as data:
                out[split] = (list(data["names"]), data["hashes"])
    return out


def _keep_hashes(out: Path, stats: dict[str, dict], splits: list[str]) -> None:
    """Moves the hashes out of each statistics JSON into ``<split>.hashes.npz`` and adds the duplicate counts."""
    hashes = {}
    for name, s in stats.items():
        names, matrix = decode_hashes(s.pop(_HASHES_KEY))
        if name in splits:
            hashes[name] = (names, matrix)
            np.savez(out / f"{name}{HASHES_SUFFIX}", names=np.array(names, dtype=str), hashes=matrix)
    for split, counts in count_duplicates(hashes).items():
        stats[split]["duplicates"] = counts
    for name, s in stats.items():
        (out / f"{name}.json").write_text(json.dumps(s))


def _quantiles(values: list[float], qs: tuple[float, ...] = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)) -> dict:
    if not values:
        return {}
    s = sorted(values)
    return {str(q): s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] for q in qs}


def _histogram(ordered: list[float], bins: int = 10) -> dict:
    """Equal-width histogram of the (sorted) reservoir sample: edges and the fraction in each bin."""
    if not ordered:
        return {}
    lo, hi = ordered[0], ordered[-1]
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in ordered:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return {"edges": [lo + i * width for i in range(bins + 1)], "fractions": [c / len(ordered) for c in counts]}


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
            ordered = sorted(num["sample"])
            out.update({"min": num["min"] if num["n"] else None, "max": num["max"] if num["n"] else None,
                        "mean": mean, "std": math.sqrt(var), "nan": num["nan"], "inf": num["inf"],
                        "quantiles": _quantiles(num["sample"]), "unique_sampled": len(set(num["sample"])),
                        "histogram": _histogram(ordered),
                        # an evenly spaced subsample of the sorted reservoir: enough for drift histograms
                        "sample": ordered[::max(1, len(ordered) // _KEPT)]})
            if f["kind"] == "INT" and len(set(num["sample"])) <= top_k:
                # counted in the reservoir sample: frequencies are relative to the sample's size
                out["top_values"] = [[v, c] for v, c in Counter(num["sample"]).most_common(top_k)]
                out["top_values_of"] = len(num["sample"])
        features[name] = out
    return {"num_examples": n, "features": features}


def run_statistics_gen(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: Any) -> dict:
    examples = inputs["examples"]
    info = json.loads(examples.path("splits.json").read_text())
    # name -> file pattern; the previous span (if ExampleGen found one) is summarized for drift checks
    sources = {s: file_pattern(examples.uri, s) for s in info["counts"]}
    for s in info.get("previous_span", {}).get("counts", {}):
        sources[f"{PREVIOUS_PREFIX}{s}"] = file_pattern(examples.path(PREVIOUS_SPAN), s)
    out = outputs["statistics"].path()
    ctx.log(f"Beam pipeline over {list(sources)} ({ctx.beam_args[0]})")
    with beam.Pipeline(options=PipelineOptions(ctx.beam_args)) as p:
        for name, pattern in sources.items():
            _ = (p
                 | f"Read[{name}]" >> beam.io.ReadFromTFRecord(pattern)
                 | f"Stats[{name}]" >> beam.CombineGlobally(ExampleStatsFn())
                 | f"Json[{name}]" >> beam.Map(json.dumps)
                 | f"Write[{name}]" >> beam.io.WriteToText(str(out / f"{name}.json"), shard_name_template=""))
    stats = {s: json.loads((out / f"{s}.json").read_text()) for s in sources}
    splits = list(info["counts"])
    _keep_hashes(out, stats, splits)
    summary = out / "summary.txt"
    summary.write_text(render_text(stats))
    ctx.tracker.log_artifact(summary, "statistics")
    page = out / "statistics.html"
    page.write_text(render_html(stats))
    ctx.tracker.log_artifact(page, "statistics")
    return {f"{s}_examples": stats[s]["num_examples"] for s in splits}


def load_statistics(artifact: Artifact) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(artifact.path().glob("*.json"))}


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
    INPUTS = {"examples": "Examples"}
    OUTPUTS = {"statistics": "ExampleStatistics"}
    PARAMETERS: dict[str, Param] = {}
    executor = staticmethod(run_statistics_gen)
