"""StatisticsGen's combiner, SchemaGen's inference and the ExampleValidator's rules, without Beam."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from rnnpipe.artifacts import ExampleStatistics
from rnnpipe.components.content_hashes import count_duplicates, decode_hashes
from rnnpipe.components.example_gen import ExampleGen
from rnnpipe.components.example_io import to_example, write_examples
from rnnpipe.components.example_validator import (
    RELAX,
    ExampleValidator,
    _report,
    find_anomalies,
    find_duplicates,
    find_single_label,
    find_skew,
    is_blocking,
    js_allowance,
    js_divergence,
    label_candidates,
    linf_distance,
    run_example_validator,
)
from rnnpipe.components.schema_gen import SchemaGen, infer_schema
from rnnpipe.components.statistics_fn import ExampleStatsFn
from rnnpipe.components.statistics_gen import StatisticsGen, render_html, run_statistics_gen
from rnnpipe.dsl import Artifact
from rnnpipe.errors import ConfigError, DataError

KINDS = {"text": "bytes", "label": "int", "score": "float", "source": "bytes"}


def stats_of(records: list[dict], kinds: dict = KINDS) -> dict:
    fn = ExampleStatsFn()
    halves = [fn.create_accumulator(), fn.create_accumulator()]
    for i, r in enumerate(records):  # two accumulators, merged: what Beam does across workers
        fn.add_input(halves[i % 2], to_example(r, kinds).SerializeToString())
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


def test_an_integer_with_many_values_gets_no_domain() -> None:
    kinds = {**KINDS, "words": "int"}
    train = stats_of([{**r, "words": 100 + k} for k, r in enumerate(records(300, 1))], kinds)
    schema = {f.name: f for f in infer_schema(train, max_string_domain=20).feature}
    assert schema["label"].HasField("int_domain") and not schema["words"].HasField("int_domain")  # 300 values
    later = stats_of([{**r, "words": 1000 + k} for k, r in enumerate(records(50, 2))], kinds)
    assert not find_anomalies({"train": train, "test": later}, infer_schema(train, max_string_domain=20), 0.02)
    assert not {f.name: f for f in infer_schema(train, max_string_domain=1).feature}["label"].HasField("int_domain")


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


def test_no_skew_between_a_large_split_and_a_small_one() -> None:
    # Integer value counts are exact (Misra-Gries sketch), out of every value, whatever the split's size.
    train, test = stats_of(records(12_000, 6, positive=0.3)), stats_of(records(1_500, 7, positive=0.3))
    assert train["features"]["label"]["top_values_of"] == 12_000
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


# --- duplicates, single-value labels, sample-size-aware skew, non-finite values, relax keys (issue 18) ---

def hashes_of(records_by_split: dict[str, list[dict]]) -> dict:
    """Per split (names, per-feature hash matrix), through two merged accumulators like stats_of."""
    fn, out = ExampleStatsFn(), {}
    for split, rows in records_by_split.items():
        halves = [fn.create_accumulator(), fn.create_accumulator()]
        for i, r in enumerate(rows):
            fn.add_input(halves[i % 2], to_example(r, {**KINDS, "id": "bytes"}).SerializeToString())
        out[split] = decode_hashes(fn.extract_output(fn.merge_accumulators(halves))["content_hashes"])
    return out


def test_duplicates_are_counted_within_and_across_splits_on_the_chosen_features() -> None:
    base = records(30, 11)
    for i, r in enumerate(base):
        r["text"], r["id"] = f"sentence {i}", str(i)
    train = base[:20] + [dict(base[0])]  # one exact repeat within train
    test = [{**r, "id": f"copy-{r['id']}"} for r in base[:4]] + base[20:]  # 4 train sentences under new ids
    hashes = hashes_of({"train": train, "test": test})
    everything = count_duplicates(hashes)
    assert everything["train"] == {"within": 1, "shared": {"test": 0}}
    assert everything["test"] == {"within": 0, "shared": {"train": 0}}  # the ids differ
    content = count_duplicates(hashes, ["text", "label"])
    assert content["test"]["shared"] == {"train": 4} and content["train"]["shared"] == {"test": 5}
    assert content["train"]["within"] == 1


def test_cross_split_duplicates_block_and_repeats_within_a_split_warn() -> None:
    counts = {"train": {"within": 3, "shared": {"eval": 0, "test": 12}},
              "eval": {"within": 0, "shared": {"train": 0, "test": 1}},
              "test": {"within": 0, "shared": {"train": 12, "eval": 1}}}
    sizes = {"train": 300, "eval": 40, "test": 40}
    found = find_duplicates(counts, sizes, 0.01, 0.0, "'text', 'label'")
    assert [(a["split"], a["kind"]) for a in found] == [
        ("train", "DUPLICATES"), ("test", "CROSS_SPLIT_DUPLICATES"), ("test", "CROSS_SPLIT_DUPLICATES")]
    leak = found[1]
    assert "12 of 40 records (30.0%) also occur in 'train'" in leak["detail"]
    assert leak["key"] == "example_validator.max_cross_split_duplicates"
    blocking = [is_blocking(a, {"text", "label"}, {"text", "label"}, set()) for a in found]
    assert blocking == [False, True, True]
    assert find_duplicates(counts, sizes, None, None, "every feature") == []
    assert [a["split"] for a in find_duplicates(counts, sizes, 0.1, None, "x")] == ["test"]  # 30% > 10%, 2.5% not


def sentiment_schema(label_domain: tuple[int, int] = (0, 1)) -> schema_pb2.Schema:
    """pipelines/sentiment/schema.pbtxt, with the label's domain as given."""
    schema = schema_pb2.Schema()
    text = schema.feature.add(name="text", type=schema_pb2.BYTES)
    label = schema.feature.add(name="label", type=schema_pb2.INT)
    for f in (text, label):
        f.shape.SetInParent()
        f.presence.min_fraction, f.presence.min_count = 1.0, 1
    label.int_domain.min, label.int_domain.max = label_domain
    return schema


def test_a_label_with_one_value_in_train_blocks_and_other_features_do_not() -> None:
    one_class = stats_of(records(50, 12, positive=1.0))
    labels = label_candidates(sentiment_schema(), None, None)
    found = find_single_label(one_class, sentiment_schema(), labels)
    assert [(a["split"], a["feature"], a["kind"]) for a in found] == [("train", "label", "SINGLE_VALUE_LABEL")]
    assert "every one of the 50 train examples has the label 1; the schema allows [0, 1]" in found[0]["detail"]
    assert find_single_label(stats_of(records(50, 12)), sentiment_schema(), ["label"]) == []
    # An inferred schema saw one value ([1, 1], ['movie']): without model features only a named label is checked;
    # with them, every categorical feature the model reads (not the constant 'source' it does not read).
    inferred = infer_schema(one_class, max_string_domain=20)
    assert label_candidates(inferred, None, None) == []
    assert label_candidates(inferred, None, {"text", "label"}) == ["label"]
    assert [a["feature"] for a in find_single_label(one_class, inferred, ["label"])] == ["label"]
    # textgen's offsets have wide int domains; forecasting's float target is a regression target.
    offsets = schema_pb2.Schema()
    for name, hi in (("start", 2**63 - 1), ("context_chars", 1_000_000)):
        f = offsets.feature.add(name=name, type=schema_pb2.INT)
        f.int_domain.min, f.int_domain.max = 0, hi
    assert label_candidates(offsets, None, {"start", "context_chars"}) == label_candidates(offsets, None, None) == []
    assert find_single_label(stats_of([{**r, "score": 1.0} for r in records(20, 1)]), offsets, ["score"]) == []


def test_small_clean_splits_are_not_skewed_but_a_real_shift_is() -> None:
    """400 clean records split 320/40/40 at random: a noisy numeric field reaches JS 0.1-0.2 by chance."""
    noisy = 0
    for seed in range(10):
        rows = records(400, 100 + seed)
        train, held_out = stats_of(rows[:320]), stats_of(rows[320:360])
        noisy += js_divergence(train["features"]["score"]["sample"], held_out["features"]["score"]["sample"]) > 0.1
        assert find_skew({"train": train, "eval": held_out}, "train", 0.1, 0.1) == [], seed
    assert noisy >= 3  # the bare threshold would have stopped these runs
    shifted = stats_of(records(40, 7, positive=0.95, score_shift=2.0))
    found = {a["feature"]: a for a in find_skew({"train": stats_of(records(320, 8)), "eval": shifted}, "train",
                                                0.1, 0.1)}
    assert set(found) == {"label", "score"}
    assert re.search(r"Jensen-Shannon divergence 0\.\d+ from 'train' > 0\.1 \+ 0\.2\d\d sampling allowance "
                     r"for 40 vs 320 examples", found["score"]["detail"])
    assert found["score"]["key"] == "example_validator.max_js" and found["label"]["key"] == "example_validator.max_linf"
    # Skew blocks on the features the model reads only.
    assert is_blocking(found["label"], {"text", "label"}, {"text", "label"}, set())
    assert not is_blocking(found["score"], {"text", "label"}, {"text", "label"}, set())


def test_js_allowance_matches_the_null_distribution() -> None:
    rng = np.random.default_rng(0)
    null = [js_divergence(list(rng.normal(size=320)), list(rng.normal(size=40))) for _ in range(400)]
    allowance = js_allowance(320, 40, 20)
    assert np.quantile(null, 0.99) < allowance < 2 * np.quantile(null, 0.99)
    assert js_allowance(18_000, 2_300, 20) < 0.005 and js_allowance(40, 40, 1) == 0.0


def test_non_finite_values_are_anomalies_in_every_numeric_feature() -> None:
    rows = records(60, 13)
    rows[3]["score"], rows[4]["score"] = float("nan"), float("inf")
    anomalies = find_anomalies({"train": stats_of(rows)}, sentiment_schema(), 0.02)
    found = [a for a in anomalies if a["kind"] == "NON_FINITE"]
    assert [(a["feature"], a["detail"], a["key"]) for a in found] == [
        ("score", "1 NaN and 1 inf values", "example_validator.allow_non_finite")]
    schema_features = {"text", "label"}
    assert not is_blocking(found[0], schema_features, {"text", "label"}, set())  # neither schema nor model: warns
    assert is_blocking(found[0], schema_features, {"text", "label", "score"}, set())
    assert is_blocking(found[0], schema_features | {"score"}, {"text"}, set())
    assert not is_blocking(found[0], schema_features | {"score"}, {"text"}, {"score"})


def test_every_anomaly_names_the_config_key_that_relaxes_it() -> None:
    bad = records(40, 14, source="tweets")
    for r in bad[:20]:
        del r["text"]
    bad[0]["label"], bad[1]["score"] = 3, float("nan")
    schema = sentiment_schema()
    schema.feature.add(name="gone", type=schema_pb2.FLOAT).presence.min_fraction = 1.0
    stats = {"train": stats_of(records(300, 15)), "test": stats_of(bad), "eval": {"num_examples": 0, "features": {}}}
    found = find_anomalies(stats, schema, 0.02) + find_skew(stats, "train", 0.1, 0.1)
    kinds = {a["kind"] for a in found}
    assert kinds >= {"EMPTY_SPLIT", "MISSING_FEATURE", "FEATURE_MISSING_TOO_OFTEN", "OUT_OF_DOMAIN", "NON_FINITE",
                     "NEW_FEATURE", "SKEW"}
    assert all(a["key"].startswith(("example_validator.", "schema_gen.", "example_gen.")) for a in found)
    assert set(RELAX) >= kinds - {"SKEW"}
    assert "[relax: example_validator.max_missing_increase]" in _report(found)


def test_numeric_parameters_have_ranges() -> None:
    stats = StatisticsGen(examples=ExampleGen(source="data.jsonl"))
    schema = SchemaGen(statistics=stats)
    for key, value in (("max_js", 1.5), ("max_linf", -0.1), ("max_cross_split_duplicates", 2.0),
                       ("max_missing_increase", -0.5)):
        with pytest.raises(ConfigError, match=f"parameter '{key}' must be >= 0 and <= 1"):
            ExampleValidator(statistics=stats, schema=schema, **{key: value})
    with pytest.raises(ConfigError, match="parameter 'max_string_domain' must be >= 0"):
        SchemaGen(statistics=stats, max_string_domain=-1)
    assert ExampleValidator(statistics=stats, schema=schema, max_js=None).params["max_js"] is None
    whole = ExampleValidator(statistics=stats, schema=schema, max_js=1).params["max_js"]  # a float param takes 1
    assert whole == 1.0 and isinstance(whole, float)


def test_statistics_gen_keeps_hashes_and_the_validator_quotes_leaked_records(tmp_path: Path) -> None:
    """One DirectRunner pass: StatisticsGen counts duplicates, the validator stops on test sentences that
    are train sentences under other ids, and quotes them."""
    rows = records(90, 16)
    for i, r in enumerate(rows):
        r["text"], r["label"], r["id"] = f"sentence {i % 60}", rows[i % 60]["label"], str(i)  # again, other ids
    examples, stats_dir, schema_dir, anomalies = (tmp_path / d for d in ("ex", "stats", "schema", "anomalies"))
    kinds = {**KINDS, "id": "bytes"}
    by_split = [("train" if i < 60 else "test", r) for i, r in enumerate(rows)]
    counts = write_examples(iter(by_split), kinds, examples, ["train", "test"], 1)
    (examples / "splits.json").write_text(json.dumps({"counts": counts, "kinds": kinds}))
    for d in (stats_dir, schema_dir, anomalies):
        d.mkdir()
    (schema_dir / "schema.pbtxt").write_text(text_format.MessageToString(sentiment_schema()))
    ctx = SimpleNamespace(beam_args=["--runner=DirectRunner"], log=lambda msg: None,
                          tracker=SimpleNamespace(log_artifact=lambda *a: None))
    art = {n: Artifact(n, n, str(d)) for n, d in (("examples", examples), ("statistics", stats_dir),
                                                  ("schema", schema_dir), ("anomalies", anomalies))}
    run_statistics_gen({"examples": art["examples"]}, {"statistics": art["statistics"]}, {}, ctx)
    stats = ExampleStatistics.read(art["statistics"])
    assert set(stats) == {"train", "test"} and "content_hashes" not in stats["test"]
    assert stats["test"]["duplicates"] == {"within": 0, "shared": {"train": 0}}  # whole records: ids differ
    assert set(ExampleStatistics.read_hashes(art["statistics"])) == {"train", "test"}
    params = {k: p.default for k, p in ExampleValidator.PARAMETERS.items()}
    with pytest.raises(DataError) as e:
        run_example_validator({k: art[k] for k in ("statistics", "schema", "examples")},
                              {"anomalies": art["anomalies"]}, params, ctx)
    message = str(e.value)
    assert re.search(r"split 'test', feature '\*': CROSS_SPLIT_DUPLICATES: 30 of 30 records \(100\.0%\) also occur "
                     r"in 'train' \(compared on 'label', 'text'\).*\[relax: example_validator\."
                     r"max_cross_split_duplicates\]", message)
    assert re.search(r"e\.g\. record \d+ of 'test' is also in 'train': \{.*\"text\": \"sentence \d+\"", message)
    report = json.loads((anomalies / "anomalies.json").read_text())
    assert {a["kind"] for a in report if not a["blocking"]} == {"NEW_FEATURE"}
    # With the check relaxed, the same statistics pass.
    run_example_validator({k: art[k] for k in ("statistics", "schema")}, {"anomalies": art["anomalies"]},
                          {**params, "max_cross_split_duplicates": None}, ctx)
