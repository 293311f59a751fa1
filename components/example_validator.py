"""ExampleValidator: checks every split's statistics against the schema and stops the run on anomalies.

Blocking anomalies (a feature missing or of the wrong type, a required feature absent from too many
examples, an out-of-domain value, an empty split, NaN/inf in a numeric feature, skew of eval or test
against train, or drift of train against the previous span's train, beyond the configured
L-infinity / Jensen-Shannon thresholds) fail the step with a
report naming the feature and split; the report is also kept as an artifact.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from tensorflow_metadata.proto.v0 import schema_pb2

from rnnpipe.dsl import Artifact, Component, Param
from rnnpipe.errors import DataError

from .example_io import example_to_dict, read_examples
from .schema_gen import read_schema
from .statistics_gen import PREVIOUS_PREFIX, load_statistics

_TYPE_NAMES = {schema_pb2.BYTES: "BYTES", schema_pb2.INT: "INT", schema_pb2.FLOAT: "FLOAT"}


def find_anomalies(stats: dict[str, dict], schema: schema_pb2.Schema, max_missing_increase: float) -> list[dict]:
    anomalies = []

    def add(split: str, feature: str, kind: str, detail: str) -> None:
        anomalies.append({"split": split, "feature": feature, "kind": kind, "detail": detail})

    for split, s in stats.items():
        if s["num_examples"] == 0:
            add(split, "*", "EMPTY_SPLIT", "the split has no examples")
            continue
        for feature in schema.feature:
            f = s["features"].get(feature.name)
            expected_fraction = feature.presence.min_fraction
            if f is None:
                if expected_fraction > 0:
                    add(split, feature.name, "MISSING_FEATURE", "absent from every example")
                continue
            if f["type"] != _TYPE_NAMES[feature.type]:
                add(split, feature.name, "WRONG_TYPE", f"expected {_TYPE_NAMES[feature.type]}, found {f['type']}")
            present = 1.0 - f["missing_fraction"]
            if present < expected_fraction - max_missing_increase:
                add(split, feature.name, "FEATURE_MISSING_TOO_OFTEN",
                    f"present in {present:.1%} of examples, the schema expects {expected_fraction:.1%}")
            if f.get("nan") or f.get("inf"):
                add(split, feature.name, "NON_FINITE", f"{f['nan']} NaN and {f['inf']} inf values")
            if feature.HasField("int_domain") and f.get("min") is not None:
                lo, hi = feature.int_domain.min, feature.int_domain.max
                if f["min"] < lo or f["max"] > hi:
                    add(split, feature.name, "OUT_OF_DOMAIN",
                        f"values in [{f['min']:g}, {f['max']:g}], domain [{lo}, {hi}]")
            if feature.HasField("string_domain"):
                allowed = set(feature.string_domain.value)
                unseen = [v for v, _ in f.get("top_values", []) if v not in allowed]
                if unseen:
                    add(split, feature.name, "OUT_OF_DOMAIN", f"values not in the schema's domain: {unseen[:5]}")
    known = {f.name for f in schema.feature}
    extra = sorted({name for s in stats.values() for name in s["features"]} - known)
    for name in extra:
        add("*", name, "NEW_FEATURE", "not in the schema (ignored by Transform)")
    return anomalies


def linf_distance(p: list[list], q: list[list], p_total: int, q_total: int) -> float:
    """L-infinity distance between two value distributions given as [value, count] top lists."""
    pf = {str(v): c / p_total for v, c in p} if p_total else {}
    qf = {str(v): c / q_total for v, c in q} if q_total else {}
    return max((abs(pf.get(k, 0.0) - qf.get(k, 0.0)) for k in pf.keys() | qf.keys()), default=0.0)


def js_divergence(a: list[float], b: list[float], bins: int = 20) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two samples over shared equal-width bins."""
    if not a or not b:
        return 0.0
    lo, hi = min(min(a), min(b)), max(max(a), max(b))
    if hi <= lo:
        return 0.0
    pa = np.histogram(a, bins=bins, range=(lo, hi))[0] / len(a)
    pb = np.histogram(b, bins=bins, range=(lo, hi))[0] / len(b)
    m = (pa + pb) / 2

    def kl(p: np.ndarray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * np.log2(p[nz] / m[nz])))

    return (kl(pa) + kl(pb)) / 2


def find_skew(stats: dict[str, dict], reference: str, max_linf: float | None, max_js: float | None) -> list[dict]:
    """Compares every split's distributions with the reference split's (categorical: L-inf, numeric: JS)."""
    found = []
    ref = stats.get(reference)
    if ref is None:
        return found
    for split, s in stats.items():
        if split == reference:
            continue
        for name, f in s["features"].items():
            r = ref["features"].get(name)
            if r is None or r["type"] != f["type"]:
                continue
            categorical = "top_values" in r and (f["type"] == "INT" or not r.get("unique_is_lower_bound"))
            if categorical and max_linf is not None and r.get("unique", 0) <= 1000:
                d = linf_distance(r["top_values"], f.get("top_values", []), r["top_values_of"],
                                  f.get("top_values_of", 0))
                if d > max_linf:
                    found.append({"split": split, "feature": name, "kind": "SKEW",
                                  "detail": f"L-infinity distance {d:.3f} from '{reference}' > {max_linf}"})
            elif f["type"] != "BYTES" and max_js is not None:
                d = js_divergence(r.get("sample", []), f.get("sample", []))
                if d > max_js:
                    found.append({"split": split, "feature": name, "kind": "SKEW",
                                  "detail": f"Jensen-Shannon divergence {d:.3f} from '{reference}' > {max_js}"})
    return found


BLOCKING = {"SKEW", "DRIFT", "EMPTY_SPLIT", "MISSING_FEATURE", "WRONG_TYPE", "FEATURE_MISSING_TOO_OFTEN", "NON_FINITE",
            "OUT_OF_DOMAIN"}


RECORD_LEVEL = {"FEATURE_MISSING_TOO_OFTEN", "NON_FINITE", "OUT_OF_DOMAIN", "WRONG_TYPE"}


def _violates(kind: str, feature: Any, record: dict) -> bool:
    value = record.get(feature.name)
    values = value if isinstance(value, list) else [value]
    if kind == "FEATURE_MISSING_TOO_OFTEN":
        return value is None
    if value is None:
        return False
    if kind == "NON_FINITE":
        return any(isinstance(v, float) and not math.isfinite(v) for v in values)
    if kind == "WRONG_TYPE":
        expected = {schema_pb2.BYTES: str, schema_pb2.INT: int, schema_pb2.FLOAT: float}[feature.type]
        return not all(isinstance(v, expected) for v in values)
    if feature.HasField("int_domain"):
        return any(not feature.int_domain.min <= v <= feature.int_domain.max for v in values)
    return feature.HasField("string_domain") and any(v not in feature.string_domain.value for v in values)


def attach_examples(anomalies: list[dict], schema: schema_pb2.Schema, examples: Artifact, limit: int = 3) -> None:
    """Adds up to ``limit`` offending records (split-local index and content) to each record-level anomaly."""
    features = {f.name: f for f in schema.feature}
    for a in anomalies:
        found = a.setdefault("examples", [])
        for i, example in enumerate(read_examples(examples.uri, a["split"])):
            record = example_to_dict(example)
            if _violates(a["kind"], features[a["feature"]], record):
                found.append(f"record {i} of '{a['split']}': {json.dumps(record, ensure_ascii=False)[:160]}")
                if len(found) == limit:
                    break


def run_example_validator(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: Any) -> dict:
    everything = load_statistics(inputs["statistics"])
    stats = {k: v for k, v in everything.items() if not k.startswith(PREVIOUS_PREFIX)}
    schema = read_schema(inputs["schema"].uri)
    anomalies = find_anomalies(stats, schema, params["max_missing_increase"])
    anomalies += find_skew(stats, "train", params["max_linf"], params["max_js"])
    previous = everything.get(f"{PREVIOUS_PREFIX}train")
    if previous is not None:  # drift: this span's train split against the previous span's
        for a in find_skew({"previous span": previous, "train": stats["train"]}, "previous span",
                           params["max_linf"], params["max_js"]):
            anomalies.append({**a, "kind": "DRIFT"})
    if "examples" in inputs:
        attach_examples([a for a in anomalies if a["kind"] in RECORD_LEVEL], schema, inputs["examples"])
    report = outputs["anomalies"].path("anomalies.json")
    report.write_text(json.dumps(anomalies, indent=1))
    ctx.tracker.log_artifact(report, "anomalies")
    blocking = [a for a in anomalies if a["kind"] in BLOCKING]
    for a in anomalies:
        severity = "BLOCKING" if a in blocking else "warning"
        ctx.log(f"{severity} {a['kind']} in {a['split']}/{a['feature']}: {a['detail']}")
    if blocking:
        lines = "\n".join(f"  - split '{a['split']}', feature '{a['feature']}': {a['kind']}: {a['detail']}"
                          + "".join(f"\n      e.g. {e}" for e in a.get("examples", []))
                          for a in blocking)
        raise DataError(f"ExampleValidator found {len(blocking)} blocking anomalies; the run stops before "
                        f"Transform:\n{lines}\nFix the data, or adjust the schema if the change is intended.")
    return {"anomalies": len(anomalies)}


class ExampleValidator(Component):
    INPUTS = {"statistics": "ExampleStatistics", "schema": "Schema", "examples": "Examples"}
    OPTIONAL_INPUTS = frozenset({"examples"})  # when given, reports quote offending records
    OUTPUTS = {"anomalies": "ExampleAnomalies"}
    PARAMETERS = {
        "max_missing_increase": Param(float, 0.02, doc="tolerated drop in a feature's presence fraction"),
        "max_linf": Param((float, type(None)), 0.1, doc="categorical skew vs train (L-infinity); None = off"),
        "max_js": Param((float, type(None)), 0.1, doc="numeric skew vs train (Jensen-Shannon); None = off"),
    }
    executor = staticmethod(run_example_validator)
