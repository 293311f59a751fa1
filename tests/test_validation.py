"""StatisticsGen's combiner, SchemaGen's inference and the ExampleValidator's rules, without Beam."""

from __future__ import annotations

import numpy as np
import pytest

from rnnpipe.components.example_io import to_example
from rnnpipe.components.example_validator import find_anomalies, find_skew, js_divergence, linf_distance
from rnnpipe.components.schema_gen import infer_schema
from rnnpipe.components.statistics_gen import ExampleStatsFn, render_html

KINDS = {"text": "bytes", "label": "int", "score": "float", "source": "bytes"}


def stats_of(records: list[dict]) -> dict:
    fn = ExampleStatsFn()
    halves = [fn.create_accumulator(), fn.create_accumulator()]
    for i, r in enumerate(records):  # two accumulators, merged: what Beam does across workers
        fn.add_input(halves[i % 2], to_example(r, KINDS).SerializeToString())
    return fn.extract_output(fn.merge_accumulators(halves))


def records(n: int, seed: int, positive: float = 0.5, score_shift: float = 0.0, source: str = "movie") -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"text": f"a sentence of {k} words", "label": int(rng.random() < positive),
             "score": float(rng.normal(score_shift, 1.0)), "source": source} for k in range(n)]


def test_statistics_count_missing_values_ranges_and_token_lengths() -> None:
    rows = records(200, 0)
    rows[5] = {k: v for k, v in rows[5].items() if k != "text"}
    rows[6]["score"] = float("nan")
    s = stats_of(rows)
    assert s["num_examples"] == 200
    text = s["features"]["text"]
    assert text["missing"] == 1 and text["type"] == "BYTES" and text["token_length"]["0.5"] == 5
    score = s["features"]["score"]
    assert score["nan"] == 1 and -4 < score["min"] < score["mean"] < score["max"] < 4
    hist = score["histogram"]
    assert len(hist["edges"]) == 11 and sum(hist["fractions"]) == pytest.approx(1.0)
    assert hist["edges"][0] == score["min"] and hist["edges"][-1] == pytest.approx(score["max"])
    assert sorted(v for v, _ in s["features"]["label"]["top_values"]) == [0, 1]


def test_html_summary_escapes_values_and_lists_every_feature() -> None:
    rows = records(20, 8)
    rows[0]["text"] = "<b>bold</b> & more"
    page = render_html({"train": stats_of(rows)})
    assert "<h3>train: 20 examples</h3>" in page and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page
    assert all(f"<td>{name}</td>" in page for name in KINDS)


def test_schema_inference_and_anomalies() -> None:
    train = stats_of(records(300, 1))
    schema = infer_schema(train, max_string_domain=20)
    label = next(f for f in schema.feature if f.name == "label")
    assert label.HasField("shape") and (label.int_domain.min, label.int_domain.max) == (0, 1)
    assert list(next(f for f in schema.feature if f.name == "source").string_domain.value) == ["movie"]
    bad = records(100, 2, source="tweets")
    for r in bad[:40]:
        del r["text"]
    bad[0]["label"] = 3
    kinds = {(a["feature"], a["kind"]) for a in find_anomalies({"train": train, "test": stats_of(bad)}, schema, 0.02)}
    assert kinds == {("text", "FEATURE_MISSING_TOO_OFTEN"), ("label", "OUT_OF_DOMAIN"), ("source", "OUT_OF_DOMAIN")}


def test_all_distinct_strings_are_identifiers_without_a_domain() -> None:
    rows = records(12, 5)
    for i, r in enumerate(rows):
        r["origin"] = f"2026-01-{i + 1:02d}"
    schema = infer_schema(stats_of(rows), max_string_domain=20)
    domains = {f.name: list(f.string_domain.value) for f in schema.feature if f.HasField("string_domain")}
    assert "origin" not in domains and domains["source"] == ["movie"]


def test_skew_is_flagged_for_shifted_distributions_only() -> None:
    train = stats_of(records(2000, 3))
    same = stats_of(records(500, 4))
    assert find_skew({"train": train, "eval": same}, "train", 0.1, 0.1) == []
    shifted = stats_of(records(500, 5, positive=0.95, score_shift=3.0))
    found = {(a["feature"], a["detail"].split()[0]) for a in find_skew({"train": train, "eval": shifted}, "train",
                                                                       0.1, 0.1)}
    assert found == {("label", "L-infinity"), ("score", "Jensen-Shannon")}


def test_no_skew_when_the_reservoir_samples_a_large_split() -> None:
    # More values than the reservoir keeps: frequencies must be relative to what was counted.
    train, test = stats_of(records(12_000, 6, positive=0.3)), stats_of(records(1_500, 7, positive=0.3))
    assert train["features"]["label"]["top_values_of"] == 10_000
    assert find_skew({"train": train, "test": test}, "train", 0.05, 0.05) == []


def test_distances() -> None:
    assert linf_distance([["a", 5], ["b", 5]], [["a", 9], ["b", 1]], 10, 10) == pytest.approx(0.4)
    assert js_divergence([0.0] * 10, [1.0] * 10) == 1.0
    assert js_divergence([0.0, 1.0] * 10, [0.0, 1.0] * 10) == 0.0


def test_fixed_length_lists_become_dense_vectors_and_ragged_ones_stay_variable() -> None:
    fn = ExampleStatsFn()
    acc = fn.create_accumulator()
    kinds = {"window": "float", "tokens": "bytes"}
    for i in range(30):
        record = {"window": [float(i), i + 1.0, i + 2.0], "tokens": ["w"] * (1 + i % 4)}
        fn.add_input(acc, to_example(record, kinds).SerializeToString())
    schema = infer_schema(fn.extract_output(acc), max_string_domain=20)
    window, tokens = (next(f for f in schema.feature if f.name == n) for n in ("window", "tokens"))
    assert [d.size for d in window.shape.dim] == [3] and not window.HasField("value_count")
    assert not tokens.HasField("shape") and (tokens.value_count.min, tokens.value_count.max) == (1, 4)
