"""Reading and writing the tf.Example shards of an Examples artifact (layout: ``Examples`` in rnnpipe/artifacts.py).

TensorFlow is imported by the functions, not the module: building a pipeline must not pay for it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rnnpipe.artifacts import Examples

if TYPE_CHECKING:
    import tensorflow as tf


def to_example(record: dict, kinds: dict[str, str]) -> tf.train.Example:
    import tensorflow as tf

    feature = {}
    for key, value in record.items():
        if value is None or key not in kinds:
            continue
        values = value if isinstance(value, list) else [value]
        kind = kinds[key]
        if kind == "bytes":
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
        elif kind == "int":
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_examples(records: Iterable[tuple[str, dict]], kinds: dict[str, str], root: Path,
                   splits: list[str], num_shards: int) -> dict[str, int]:
    """Writes (split, record) pairs round-robin over ``num_shards`` files per split; returns counts."""
    import tensorflow as tf

    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers: dict[str, list[tf.io.TFRecordWriter]] = {}
    counts = {s: 0 for s in splits}
    try:
        for split in splits:
            folder = Examples.split_dir(root, split)
            folder.mkdir(parents=True, exist_ok=True)
            writers[split] = [tf.io.TFRecordWriter(
                str(folder / f"data-{i:05d}-of-{num_shards:05d}{Examples.RECORD_SUFFIX}"), options)
                for i in range(num_shards)]
        for split, record in records:
            writers[split][counts[split] % num_shards].write(to_example(record, kinds).SerializeToString())
            counts[split] += 1
    finally:
        for ws in writers.values():
            for w in ws:
                w.close()
    return counts


def read_examples(root: str | Path, split: str) -> Iterator[tf.train.Example]:
    import tensorflow as tf

    for path in Examples.shard_paths(root, split):
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
            yield tf.train.Example.FromString(raw)


def example_to_dict(example: tf.train.Example) -> dict:
    out = {}
    for key, feat in example.features.feature.items():
        kind = feat.WhichOneof("kind")
        values = list(getattr(feat, kind).value)
        if kind == "bytes_list":
            values = [v.decode("utf-8", "replace") for v in values]
        out[key] = values[0] if len(values) == 1 else values
    return out
