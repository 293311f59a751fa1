"""StatisticsGen's accumulators: mergeable sketches, so the statistics do not depend on how the input is split."""

from __future__ import annotations

import random

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.components.statistics_fn import _EPS as EPS
from rnnpipe.components.statistics_fn import ExampleStatsFn, summarize
from rnnpipe.components.statistics_gen import feature_stats_proto


def example(value: float, label: int, text: str) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "value": tf.train.Feature(float_list=tf.train.FloatList(value=[value])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
    })).SerializeToString()


def statistics(records: list[bytes], parts: int) -> dict:
    """What Beam computes when it splits ``records`` into ``parts`` bundles and merges their accumulators."""
    fn = ExampleStatsFn()
    accumulators = []
    for chunk in np.array_split(np.arange(len(records)), parts):
        acc = fn.create_accumulator()
        for i in chunk:
            acc = fn.add_input(acc, records[i])
        accumulators.append(acc)
    return summarize(fn.merge_accumulators(accumulators))


@pytest.fixture(scope="module")
def rows() -> list[tuple[float, int, str]]:
    rng = random.Random(0)
    # More rows than the 10,000-value reservoir the sketches replaced could hold.
    return [(rng.lognormvariate(0, 1), int(rng.random() < 0.3), f"w{rng.randrange(5)}") for _ in range(24_000)]


def test_a_sorted_file_split_in_bundles_gives_the_statistics_of_a_shuffled_one(rows) -> None:
    ordered = [example(*r) for r in sorted(rows)]  # bundles of a sorted file hold disjoint value ranges
    shuffled = [example(*r) for r in random.Random(1).sample(rows, len(rows))]
    a, b = statistics(ordered, parts=4)["features"], statistics(shuffled, parts=3)["features"]
    truth = np.quantile([r[0] for r in rows], [0.01, 0.25, 0.5, 0.75, 0.99])
    values = np.sort(np.float32([r[0] for r in rows])).astype(np.float64)  # a FloatList holds float32
    for stats in (a, b):
        got = [stats["value"]["quantiles"][str(q)] for q in (0.01, 0.25, 0.5, 0.75, 0.99)]
        ranks = np.searchsorted(values, got) / len(values)
        assert np.abs(ranks - [0.01, 0.25, 0.5, 0.75, 0.99]).max() <= EPS + 1 / len(values), (got, truth)
        assert stats["value"]["min"] == values[0] and stats["value"]["max"] == values[-1]
    # Integer value counts and string counts are exact here, in any order.
    assert a["label"]["top_values"] == b["label"]["top_values"]
    assert sum(c for _, c in a["label"]["top_values"]) == len(rows) and a["label"]["unique"] == 2
    assert sorted(a["text"]["top_values"]) == sorted(b["text"]["top_values"])
    # The drift check's histogram input is the same distribution either way.
    assert np.abs(np.array(a["value"]["sample"]) - np.array(b["value"]["sample"])).max() < 0.5


def test_the_statistics_are_written_as_a_tensorflow_metadata_proto(rows) -> None:
    stats = {"train": statistics([example(*r) for r in rows], parts=2)}
    proto = feature_stats_proto(stats)
    (dataset,) = proto.datasets
    by_name = {f.path.step[0]: f for f in dataset.features}
    assert dataset.name == "train" and dataset.num_examples == len(rows)
    assert by_name["value"].num_stats.common_stats.num_non_missing == len(rows)
    assert by_name["value"].num_stats.median == pytest.approx(np.median([r[0] for r in rows]), rel=0.01)
    buckets = by_name["value"].num_stats.histograms[0].buckets
    assert sum(b.sample_count for b in buckets) == pytest.approx(len(rows))
    assert by_name["text"].string_stats.unique == 5 and len(by_name["text"].string_stats.top_values) == 5
