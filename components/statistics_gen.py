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

import html
import json
from pathlib import Path

from tensorflow_metadata.proto.v0 import statistics_pb2

from rnnpipe.artifacts import Examples, ExampleStatistics
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param

from .beam_options import pipeline_options
from .content_hashes import HASHES_KEY, count_duplicates, decode_hashes


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
        names, matrix = decode_hashes(s.pop(HASHES_KEY))
        if name in splits:
            hashes[name] = (names, matrix)
            ExampleStatistics.write_hashes(out, name, names, matrix)
    for split, counts in count_duplicates(hashes).items():
        stats[split]["duplicates"] = counts
    for name, s in stats.items():
        ExampleStatistics.write(out, name, s)


def run_statistics_gen(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                       ctx: ExecutionContext) -> dict:
    examples = inputs["examples"]
    info = Examples.read_info(examples)
    # name -> file pattern; the previous span (if ExampleGen found one) is summarized for drift checks
    sources = {s: Examples.file_pattern(examples, s) for s in info.splits}
    for s in (info.previous_span or {}).get("counts", {}):
        sources[f"{ExampleStatistics.PREVIOUS_PREFIX}{s}"] = Examples.file_pattern(Examples.previous_span(examples), s)
    out = outputs["statistics"].path()
    import apache_beam as beam

    from .statistics_fn import ExampleStatsFn

    ctx.log(f"Beam pipeline over {list(sources)} ({ctx.beam_args[0]})")
    with beam.Pipeline(options=pipeline_options(ctx.beam_args)) as p:
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
