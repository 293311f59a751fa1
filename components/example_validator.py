"""ExampleValidator: checks every split's statistics against the schema and stops the run on anomalies.

Blocking anomalies fail the step with a report naming the split, the feature, offending records and the
config key that would relax the check; the report is also kept as an artifact (``anomalies.json``):

- the schema's contract: a feature missing or of the wrong type, a required feature absent from too many
  examples, an out-of-domain value, an empty split;
- NaN/inf in a numeric feature of the schema or one the model reads (elsewhere a warning);
- a classification label with a single value in the train split;
- records shared between splits (test leaking into train) beyond ``max_cross_split_duplicates``; exact
  duplicates within a split only warn;
- skew of eval/test against train and drift of train against the previous span's train, beyond the
  L-infinity / Jensen-Shannon thresholds plus a sampling-noise allowance (see ``find_skew``), blocking on
  the features the model reads (``model_features``) and a warning on the rest.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
from tensorflow_metadata.proto.v0 import schema_pb2

from rnnpipe.artifacts import ExampleAnomalies, Examples, ExampleStatistics, Schema
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import DataError

from .content_hashes import count_duplicates, feature_hash, record_hashes
from .example_io import example_to_dict, read_examples

PREVIOUS_PREFIX = ExampleStatistics.PREVIOUS_PREFIX

log = logging.getLogger(__name__)

_TYPE_NAMES = {schema_pb2.BYTES: "BYTES", schema_pb2.INT: "INT", schema_pb2.FLOAT: "FLOAT"}
ALPHA = 0.001  # how often the skew checks may flag two samples of one distribution (per feature and split)
_Z = 3.29  # two-sided normal quantile for ALPHA
_MAX_CLASSES = 1000  # an int domain this narrow (e.g. [0, 1]) holds class ids; a wider one is a quantity

# The config key (or the file) that relaxes each kind of anomaly: every report line names it.
RELAX = {
    "EMPTY_SPLIT": "example_gen.splits",
    "MISSING_FEATURE": "schema_gen.curated_schema",
    "WRONG_TYPE": "schema_gen.curated_schema",
    "OUT_OF_DOMAIN": "schema_gen.curated_schema",
    "NEW_FEATURE": "schema_gen.curated_schema",
    "FEATURE_MISSING_TOO_OFTEN": "example_validator.max_missing_increase",
    "NON_FINITE": "example_validator.allow_non_finite",
    "CROSS_SPLIT_DUPLICATES": "example_validator.max_cross_split_duplicates",
    "DUPLICATES": "example_validator.max_duplicates",
    "SINGLE_VALUE_LABEL": "",  # no key: a classifier needs examples of two classes at least
}
BLOCKING = {"SKEW", "DRIFT", "EMPTY_SPLIT", "MISSING_FEATURE", "WRONG_TYPE", "FEATURE_MISSING_TOO_OFTEN", "NON_FINITE",
            "OUT_OF_DOMAIN", "CROSS_SPLIT_DUPLICATES", "SINGLE_VALUE_LABEL"}
RECORD_LEVEL = {"FEATURE_MISSING_TOO_OFTEN", "NON_FINITE", "OUT_OF_DOMAIN", "WRONG_TYPE"}


def _anomaly(split: str, feature: str, kind: str, detail: str, key: str | None = None) -> dict:
    return {"split": split, "feature": feature, "kind": kind, "detail": detail, "key": key or RELAX[kind]}


def find_anomalies(stats: dict[str, dict], schema: schema_pb2.Schema, max_missing_increase: float) -> list[dict]:
    """The schema's contract, checked split by split; NaN/inf are reported for every numeric feature."""
    anomalies = []

    def add(split: str, feature: str, kind: str, detail: str) -> None:
        anomalies.append(_anomaly(split, feature, kind, detail))

    known = {f.name for f in schema.feature}
    for split, s in stats.items():
        if s["num_examples"] == 0:
            add(split, "*", "EMPTY_SPLIT", "the split has no examples")
            continue
        for name, f in s["features"].items():  # any numeric feature, in the schema or not
            if f.get("nan") or f.get("inf"):
                add(split, name, "NON_FINITE", f"{f['nan']} NaN and {f['inf']} inf values")
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
    extra = sorted({name for s in stats.values() for name in s["features"]} - known)
    for name in extra:
        add("*", name, "NEW_FEATURE", "not in the schema (ignored by Transform)")
    return anomalies


def _is_class_domain(feature: schema_pb2.Feature, least: int = 2) -> bool:
    """A domain of a few values (``least`` at least) that the schema declares: what a class label has."""
    if feature.HasField("string_domain"):
        return len(feature.string_domain.value) >= least
    return (feature.HasField("int_domain")
            and least - 1 <= feature.int_domain.max - feature.int_domain.min < _MAX_CLASSES)


def find_single_label(train: dict, schema: schema_pb2.Schema, labels: list[str]) -> list[dict]:
    """A label whose every train value is the same: nothing to learn, and the Evaluator would fail at the end.

    ``labels``: the label feature if known, else the categorical features the model reads; features the
    train split lacks, and float (regression) targets, are skipped.
    """
    found = []
    domains = {f.name: f for f in schema.feature}
    for name in labels:
        f = train["features"].get(name)
        if f is None or f["type"] == "FLOAT" or f["present"] == 0:
            continue
        distinct = f.get("unique") if f["type"] == "BYTES" else (f["min"] != f["max"]) + 1
        if distinct != 1:
            continue
        value = f["top_values"][0][0] if f.get("top_values") else f.get("min")
        value = int(value) if f["type"] == "INT" else value
        allowed = ""
        if name in domains and _is_class_domain(domains[name]):
            d = domains[name]
            allowed = (f"; the schema allows {list(d.string_domain.value)[:10]}" if d.HasField("string_domain")
                       else f"; the schema allows [{d.int_domain.min}, {d.int_domain.max}]")
        found.append(_anomaly("train", name, "SINGLE_VALUE_LABEL",
                              f"every one of the {f['present']} train examples has the label {value!r}{allowed}; "
                              "a classifier needs two classes at least: add examples of the others"))
    return found


def label_candidates(schema: schema_pb2.Schema, label_feature: str | None, model_features: set[str] | None
                     ) -> list[str]:
    """The features whose single value blocks: ``label_feature`` if named; else the categorical features the
    model reads (``model_features``; None = the schema's, and then only domains that declare two values or
    more, since an inferred schema gives a constant column such as a source a domain of one value)."""
    if label_feature is not None:
        return [label_feature]
    least = 2 if model_features is None else 1
    return [f.name for f in schema.feature
            if (model_features is None or f.name in model_features) and _is_class_domain(f, least)]


def linf_distance(p: list[list], q: list[list], p_total: int, q_total: int) -> float:
    """L-infinity distance between two value distributions given as [value, count] top lists."""
    pf = {str(v): c / p_total for v, c in p} if p_total else {}
    qf = {str(v): c / q_total for v, c in q} if q_total else {}
    return max((abs(pf.get(k, 0.0) - qf.get(k, 0.0)) for k in pf.keys() | qf.keys()), default=0.0)


def linf_excess(p: list[list], q: list[list], p_total: int, q_total: int, threshold: float
                ) -> tuple[str, float, float, float] | None:
    """The value whose frequency differs most beyond ``threshold`` plus its sampling allowance, as
    (value, p frequency, q frequency, allowance); None if every value is within.

    The allowance is a two-proportion z bound: |p - q| of two samples of one distribution stays under
    z * sqrt(pooled * (1 - pooled) * (1/n_p + 1/n_q)) but for ALPHA of the cases, so it shrinks with n.
    """
    if not p_total or not q_total:
        return None
    pf, qf = {str(v): c / p_total for v, c in p}, {str(v): c / q_total for v, c in q}
    worst, worst_excess = None, 0.0
    for k in pf.keys() | qf.keys():
        a, b = pf.get(k, 0.0), qf.get(k, 0.0)
        pooled = (a * p_total + b * q_total) / (p_total + q_total)
        allowance = _Z * math.sqrt(pooled * (1 - pooled) * (1 / p_total + 1 / q_total))
        excess = abs(a - b) - threshold - allowance
        if excess > worst_excess:
            worst, worst_excess = (k, a, b, allowance), excess
    return worst


def js_divergence(a: list[float], b: list[float], bins: int = 20) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two samples over shared equal-width bins."""
    return _js_and_bins(a, b, bins)[0]


def _js_and_bins(a: list[float], b: list[float], bins: int = 20) -> tuple[float, int]:
    """The divergence and the number of bins either sample fills."""
    if not a or not b:
        return 0.0, 0
    lo, hi = min(min(a), min(b)), max(max(a), max(b))
    if hi <= lo:
        return 0.0, 1
    pa = np.histogram(a, bins=bins, range=(lo, hi))[0] / len(a)
    pb = np.histogram(b, bins=bins, range=(lo, hi))[0] / len(b)
    m = (pa + pb) / 2

    def kl(p: np.ndarray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * np.log2(p[nz] / m[nz])))

    return (kl(pa) + kl(pb)) / 2, int(np.count_nonzero(m))


def js_allowance(n_a: int, n_b: int, filled_bins: int) -> float:
    """How far the Jensen-Shannon divergence of two samples of ONE distribution may reach by chance.

    For small differences JS (nats) ~ 1/8 * sum((p_a - p_b)^2 / m), and Pearson's two-sample statistic
    sum((p_a - p_b)^2 / m) / (1/n_a + 1/n_b) is chi-square with (bins - 1) degrees of freedom. So JS (bits)
    exceeds chi2_{1-ALPHA}(bins - 1) * (1/n_a + 1/n_b) / (8 ln 2) for ALPHA of such pairs: 0.22 for 320
    train against 40 eval examples over 20 bins (the null mean is 0.10), 0.004 for 18,000 against 2,300.
    Checked by simulation (normal, log-normal, uniform) within 10% down to 40 examples per split.
    """
    if filled_bins < 2 or not n_a or not n_b:
        return 0.0
    from scipy.stats import chi2  # scipy.stats costs a second to import: only when a drift check runs

    return float(chi2.ppf(1 - ALPHA, filled_bins - 1)) * (1 / n_a + 1 / n_b) / (8 * math.log(2))


def find_skew(stats: dict[str, dict], reference: str, max_linf: float | None, max_js: float | None) -> list[dict]:
    """Compares every split's distributions with the reference split's (categorical: L-inf, numeric: JS).

    A feature is flagged when the distance exceeds the threshold plus the distance sampling noise alone
    reaches at these sizes (``linf_excess``, ``js_allowance``): the thresholds are effect sizes that hold
    for large splits and widen for small ones, so 400 clean records split at random are not "skewed".
    Sizes are counted in examples, not values: the values of one example (a window, a sentence's tags)
    are not independent, so the allowance errs wide.
    """
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
                worst = linf_excess(r["top_values"], f.get("top_values", []), r["top_values_of"],
                                    f.get("top_values_of", 0), max_linf)
                if worst is not None:
                    d = linf_distance(r["top_values"], f.get("top_values", []), r["top_values_of"],
                                      f.get("top_values_of", 0))
                    value, p, q, allowance = worst
                    found.append(_anomaly(split, name, "SKEW", (
                        f"L-infinity distance {d:.3f} from '{reference}' (value {value!r}: {q:.3f} vs {p:.3f}) > "
                        f"{max_linf} + {allowance:.3f} sampling allowance for {f.get('top_values_of', 0)} vs "
                        f"{r['top_values_of']} values"), "example_validator.max_linf"))
            elif f["type"] != "BYTES" and max_js is not None:
                d, filled = _js_and_bins(r.get("sample", []), f.get("sample", []))
                allowance = js_allowance(r["present"], f["present"], filled)
                if d > max_js + allowance:
                    found.append(_anomaly(split, name, "SKEW", (
                        f"Jensen-Shannon divergence {d:.3f} from '{reference}' > {max_js} + {allowance:.3f} "
                        f"sampling allowance for {f['present']} vs {r['present']} examples"),
                        "example_validator.max_js"))
    return found


def _split_order(splits: list[str]) -> list[str]:
    return sorted(splits, key=lambda s: (s != "train", s))


def find_duplicates(counts: dict[str, dict], sizes: dict[str, int], max_cross: float | None,
                    max_within: float | None, compared: str) -> list[dict]:
    """CROSS_SPLIT_DUPLICATES: records of a split that also occur in an earlier split (train first), as a
    fraction of the split; DUPLICATES: records repeating an earlier one of the same split (a warning)."""
    found = []
    order = _split_order(list(counts))
    for i, split in enumerate(order):
        n = sizes.get(split, 0)
        if not n:
            continue
        within = counts[split]["within"]
        if max_within is not None and within / n > max_within:
            found.append(_anomaly(split, "*", "DUPLICATES", (
                f"{within} of {n} records ({within / n:.1%}) repeat an earlier record of the split "
                f"(compared on {compared}); tolerated: {max_within:.1%}")))
        for other in order[:i]:
            shared = counts[split]["shared"].get(other, 0)
            if max_cross is not None and shared / n > max_cross:
                found.append(_anomaly(split, "*", "CROSS_SPLIT_DUPLICATES", (
                    f"{shared} of {n} records ({shared / n:.1%}) also occur in '{other}' (compared on {compared}): "
                    f"the model is {'trained' if other == 'train' else 'selected'} on what it is measured on; "
                    f"tolerated: {max_cross:.1%}. Remove the repeated records")))
    return found


def _duplicate_anomalies(statistics: Artifact, stats: dict[str, dict], features: set[str], params: dict
                         ) -> tuple[list[dict], dict, list[str] | None]:
    """Recounts duplicates over ``features`` (those the hashes know; all if none) from the kept hashes, or
    takes StatisticsGen's whole-record counts from statistics written before the hashes were kept."""
    hashes = ExampleStatistics.read_hashes(statistics)
    known = {n for names, _ in hashes.values() for n in names}
    compared = sorted(features & known) or None
    if hashes:
        counts = count_duplicates(hashes, compared)
    else:
        counts = {s: v["duplicates"] for s, v in stats.items() if "duplicates" in v}
        compared = None
    sizes = {s: v["num_examples"] for s, v in stats.items()}
    what = "every feature" if compared is None else ", ".join(f"'{n}'" for n in compared)
    found = find_duplicates(counts, sizes, params["max_cross_split_duplicates"], params["max_duplicates"], what)
    return found, hashes, compared


def is_blocking(a: dict, schema_features: set[str], model_features: set[str], allow_non_finite: set[str]) -> bool:
    """Skew and drift block on features the model reads; NaN/inf on schema or model features not allowed."""
    if a["kind"] in ("SKEW", "DRIFT"):
        return a["feature"] in model_features
    if a["kind"] == "NON_FINITE":
        return a["feature"] in schema_features | model_features and a["feature"] not in allow_non_finite
    return a["kind"] in BLOCKING


def _violates(kind: str, name: str, feature: Any, record: dict) -> bool:
    value = record.get(name)
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
            if _violates(a["kind"], a["feature"], features.get(a["feature"]), record):
                found.append(f"record {i} of '{a['split']}': {json.dumps(record, ensure_ascii=False)[:160]}")
                if len(found) == limit:
                    break


def attach_duplicates(anomalies: list[dict], hashes: dict, compared: list[str] | None, examples: Artifact,
                      limit: int = 3) -> None:
    """Quotes up to ``limit`` records of each CROSS_SPLIT_DUPLICATES anomaly's split found in an earlier split."""
    for a in anomalies:
        split = a["split"]
        order = _split_order(list(hashes))
        earlier = {s: set(record_hashes(*hashes[s], compared).tolist()) for s in order[:order.index(split)]}
        found = a.setdefault("examples", [])
        for i, example in enumerate(read_examples(examples.uri, split)):
            names = sorted(example.features.feature)
            row = np.array([[feature_hash(example.features.feature[n]) for n in names]], dtype=np.uint64)
            h = int(record_hashes(names, row, compared)[0])
            where = next((s for s, hs in earlier.items() if h in hs), None)
            if where is not None:
                record = json.dumps(example_to_dict(example), ensure_ascii=False)[:140]
                found.append(f"record {i} of '{split}' is also in '{where}': {record}")
                if len(found) == limit:
                    break


def _report(blocking: list[dict]) -> str:
    lines = "\n".join(f"  - split '{a['split']}', feature '{a['feature']}': {a['kind']}: {a['detail']}"
                      + (f" [relax: {a['key']}]" if a["key"] else "")
                      + "".join(f"\n      e.g. {e}" for e in a.get("examples", []))
                      for a in blocking)
    return (f"ExampleValidator found {len(blocking)} blocking anomalies; the run stops before Transform:\n{lines}\n"
            "Fix the data, or relax a check with the config key in brackets (--set KEY=VALUE; "
            "schema_gen.curated_schema: a schema file of your own, or null to infer one from the data).")


def read_features(params: dict) -> set[str] | None:
    """The raw features the model reads: ``model_features``, else the ``task``'s serving features and label
    (resolved here, not when the pipeline is built: importing the model's module imports Keras); None: unknown."""
    if params["model_features"] is not None:
        return set(params["model_features"])
    if params["task"] is None:
        return None
    task = Ref(params["task"]).resolve()
    return {*task.serving_features, task.label_key}


def run_example_validator(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                          ctx: ExecutionContext) -> dict:
    everything = ExampleStatistics.read(inputs["statistics"])
    stats = {k: v for k, v in everything.items() if not k.startswith(PREVIOUS_PREFIX)}
    schema = Schema.read(inputs["schema"])
    schema_features = {f.name for f in schema.feature}
    declared = read_features(params)
    model_features = schema_features if declared is None else declared
    anomalies = find_anomalies(stats, schema, params["max_missing_increase"])
    if "train" in stats:
        labels = label_candidates(schema, params["label_feature"],
                                  declared)
        anomalies += find_single_label(stats["train"], schema, labels)
    duplicates, hashes, compared = _duplicate_anomalies(inputs["statistics"], stats, model_features, params)
    anomalies += duplicates
    anomalies += find_skew(stats, "train", params["max_linf"], params["max_js"])
    previous = everything.get(f"{PREVIOUS_PREFIX}train")
    if previous is not None:  # drift: this span's train split against the previous span's
        for a in find_skew({"previous span": previous, "train": stats["train"]}, "previous span",
                           params["max_linf"], params["max_js"]):
            anomalies.append({**a, "kind": "DRIFT"})
    allowed = set(params["allow_non_finite"])
    for a in anomalies:
        a["blocking"] = is_blocking(a, schema_features, model_features, allowed)
    if "examples" in inputs:
        attach_examples([a for a in anomalies if a["kind"] in RECORD_LEVEL], schema, inputs["examples"])
        attach_duplicates([a for a in anomalies if a["kind"] == "CROSS_SPLIT_DUPLICATES"], hashes, compared,
                          inputs["examples"])
    report = ExampleAnomalies.write(outputs["anomalies"], anomalies)
    ctx.tracker.log_artifact(report, "anomalies")
    for a in anomalies:
        if a["blocking"]:
            ctx.log(f"BLOCKING {a['kind']} in {a['split']}/{a['feature']}: {a['detail']}")
        else:
            read = "" if a["feature"] in model_features | {"*"} else " (a feature the model does not read)"
            log.warning("ExampleValidator: %s in %s/%s%s: %s [relax: %s]", a["kind"], a["split"], a["feature"],
                        read, a["detail"], a["key"] or "-")
    blocking = [a for a in anomalies if a["blocking"]]
    if blocking:
        raise DataError(_report(blocking))
    return {"anomalies": len(anomalies)}


class ExampleValidator(Component):
    INPUTS = {"statistics": ExampleStatistics.TYPE, "schema": Schema.TYPE, "examples": Examples.TYPE}
    OPTIONAL_INPUTS = frozenset({"examples"})  # when given, reports quote offending records
    OUTPUTS = {"anomalies": ExampleAnomalies.TYPE}
    PARAMETERS = {
        "max_missing_increase": Param(float, 0.02, doc="tolerated drop in a feature's presence fraction",
                                      min=0.0, max=1.0),
        "max_linf": Param((float, type(None)), 0.1, min=0.0, max=1.0,
                          doc="categorical skew vs train (L-infinity) beyond the sampling allowance; None = off"),
        "max_js": Param((float, type(None)), 0.1, min=0.0, max=1.0,
                        doc="numeric skew vs train (Jensen-Shannon) beyond the sampling allowance; None = off"),
        "max_cross_split_duplicates": Param((float, type(None)), 0.01, min=0.0, max=1.0,
                                            doc="fraction of a split's records that may also occur in an earlier "
                                                "split (train, eval, test) before the run stops; None = off"),
        "max_duplicates": Param((float, type(None)), 0.0, min=0.0, max=1.0,
                                doc="fraction of a split's records that may repeat one of the split before a "
                                    "warning; None = off"),
        "allow_non_finite": Param(list, [], doc="numeric features whose NaN/inf values only warn"),
        "model_features": Param((list, tuple, type(None)), None,
                                doc="raw features the model reads (inputs and label): skew on them blocks, on "
                                    "the rest warns; duplicates compare them; None = every schema feature"),
        "task": Param(Ref, None, doc="'module:TASK', the TrainingTask whose serving features and label are the "
                                     "model's features when model_features is None"),
        "label_feature": Param((str, type(None)), None,
                               doc="the classification label: one value in train blocks; None = any categorical "
                                   "feature in model_features (or, without them, with a domain of 2+ values)"),
    }
    executor = staticmethod(run_example_validator)
