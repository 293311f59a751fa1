from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnpipe.components.example_gen import ExampleGen, resolve_spans, run_example_gen, split_of
from rnnpipe.components.example_io import example_to_dict, read_examples
from rnnpipe.dsl import Artifact
from rnnpipe.errors import DataError

CTX = SimpleNamespace(log=lambda msg: None)


def run(tmp_path: Path, source: Path, **params) -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    defaults = {k: v.default for k, v in ExampleGen.PARAMETERS.items() if not v.required}
    defaults["source"] = str(source)
    run_example_gen({}, {"examples": Artifact("examples", "Examples", str(out))}, {**defaults, **params}, CTX)
    return out


def records(n: int) -> list[dict]:
    return [{"id": str(i), "text": f"sentence number {i}", "score": i / 7, "label": i % 2, "tags": ["a", "b"]}
            for i in range(n)]


def test_jsonl_round_trip_returns_what_went_in(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records(300)))
    out = run(tmp_path, src, split_key=["id"])
    back = {}
    for split in ("train", "eval", "test"):
        for ex in read_examples(out, split):
            d = example_to_dict(ex)
            back[d["id"]] = d
            assert split_of(d["id"], {"train": 80, "eval": 10, "test": 10}) == split
    assert len(back) == 300
    for r in records(300):
        got = back[r["id"]]
        assert got["text"] == r["text"] and got["label"] == r["label"] and got["tags"] == r["tags"]
        assert got["score"] == pytest.approx(r["score"], rel=1e-6)
    counts = json.loads((out / "splits.json").read_text())["counts"]
    assert sum(counts.values()) == 300 and 200 < counts["train"] < 280


def test_split_is_stable_when_data_is_added() -> None:
    splits = {"train": 80, "eval": 10, "test": 10}
    before = {str(i): split_of(f"movie:{i}", splits) for i in range(1000)}
    assert set(before.values()) == {"train", "eval", "test"}
    # The split depends on the key alone, not on position or on the other records.
    assert all(split_of(f"movie:{i}", splits) == s for i, s in before.items())


def test_malformed_csv_line_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "reviews.csv"
    src.write_text('text,label\n"good film",1\n"bad film",0\n"too, many",1,extra\n"fine",1\n')
    with pytest.raises(DataError, match=r"reviews\.csv:4: expected 2 columns \(text, label\), got 3"):
        run(tmp_path, src)
    assert not list((tmp_path / "out").rglob("*.tfrecord.gz"))  # validated before anything is written


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_text('{"text": "ok", "label": 1}\n{"text": "broken", "label": \n')
    with pytest.raises(DataError, match=r"data\.jsonl:2: not valid JSON"):
        run(tmp_path, src)


def test_type_conflict_names_the_record(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_text('{"text": "ok", "label": 1}\n{"text": "x", "label": "positive"}\n')
    with pytest.raises(DataError, match=r"data\.jsonl:2: field 'label' is bytes here but int"):
        run(tmp_path, src)


def test_empty_dataset_is_rejected(tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no records; the dataset is empty"):
        run(tmp_path, src)


def test_missing_file_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data not found: .*absent\.jsonl.*rnnpipe data fetch"):
        run(tmp_path, tmp_path / "absent.jsonl")


def test_an_empty_split_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "tiny.jsonl"
    src.write_text('{"text": "only one", "label": 1}\n')
    with pytest.raises(DataError, match=r"split\(s\) .* got no records out of 1"):
        run(tmp_path, src)


def test_source_content_is_part_of_the_cache_key(tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("a\n")
    first = ExampleGen(source=str(src)).external_fingerprint({})
    src.write_text("b\n")
    assert ExampleGen(source=str(src)).external_fingerprint({}) != first


def test_spans_pick_the_latest_and_the_one_before(tmp_path: Path) -> None:
    for span in (1, 2, 10):
        (tmp_path / f"reviews-{span}.jsonl").write_text(f'{{"text": "span {span}"}}\n')
    (tmp_path / "reviews-x.jsonl").write_text("{}\n")  # not a span number: ignored
    path, span, previous = resolve_spans(str(tmp_path / "reviews-{SPAN}.jsonl"))
    assert (path.name, span, previous.name) == ("reviews-10.jsonl", 10, "reviews-2.jsonl")
    assert resolve_spans(str(tmp_path / "reviews-1.jsonl")) == (tmp_path / "reviews-1.jsonl", None, None)
    with pytest.raises(DataError, match=r"no file matches .*other-\{SPAN\}\.csv"):
        resolve_spans(str(tmp_path / "other-{SPAN}.csv"))


def read_points(path: Path, *, history: int) -> Iterator[tuple[str, dict]]:
    """A reader as an application writes one: a series file -> windows, split chronologically."""
    values = [float(line) for line in path.read_text().split()]
    for end in range(history, len(values)):
        if values[end] < 0:
            raise DataError(f"{path}:{end + 1}: negative value {values[end]}")
        split = "train" if end < 0.8 * len(values) else "test"
        yield f"{path}:{end + 1}", {"history": values[end - history:end], "target": values[end], "split": split}


def test_a_reader_and_a_partition_feature_split_chronologically(tmp_path: Path) -> None:
    src = tmp_path / "series.txt"
    src.write_text("\n".join(str(i) for i in range(50)))
    reader = f"{__name__}:read_points"
    out = run(tmp_path, src, reader=reader, reader_config={"history": 3}, partition_feature="split",
              splits={"train": 1, "test": 1})
    train = [example_to_dict(e) for e in read_examples(out, "train")]
    test = [example_to_dict(e) for e in read_examples(out, "test")]
    assert max(r["target"] for r in train) < min(r["target"] for r in test) == 40.0
    assert test[0]["history"] == [37.0, 38.0, 39.0] and len(train) + len(test) == 47
    # The partition field is the split directory itself, not a feature: every other field is written as read.
    written = {r["target"]: r for r in train + test}
    for _, record in read_points(src, history=3):
        expected = {k: v for k, v in record.items() if k != "split"}
        assert written[record["target"]] == expected
    assert "split" not in json.loads((out / "splits.json").read_text())["kinds"]
    src.write_text("1\n2\n3\n-4\n")
    with pytest.raises(DataError, match=r"series.txt:4: negative value"):
        run(tmp_path, src, reader=reader, reader_config={"history": 3}, partition_feature="split")
    src.write_text("\n".join(str(i) for i in range(50)))
    with pytest.raises(DataError, match=r"series.txt:4: partition field 'split' is 'train'; expected one of"):
        run(tmp_path, src, reader=reader, reader_config={"history": 3}, partition_feature="split",
            splits={"fit": 1, "test": 1})


def test_an_unknown_partition_value_names_the_record_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_text('{"text": "a", "part": "train"}\n{"text": "b", "part": "test"}\n{"text": "c", "part": "dev"}\n')
    with pytest.raises(DataError, match=r"data\.jsonl:3: partition field 'part' is 'dev'; expected one of the "
                                         r"splits \['train', 'test'\]"):
        run(tmp_path, src, partition_feature="part", splits={"train": 1, "test": 1})
    assert not list((tmp_path / "out").rglob("*.tfrecord.gz"))
    src.write_text('{"text": "a", "part": "train"}\n{"text": "b", "part": "test"}\n{"text": "c"}\n')
    with pytest.raises(DataError, match=r"data\.jsonl:3: partition field 'part' is None"):
        run(tmp_path, src, partition_feature="part", splits={"train": 1, "test": 1})
    src.write_text('{"text": "a", "part": "train"}\n{"text": "b", "part": "test"}\n')
    out = run(tmp_path, src, partition_feature="part", splits={"train": 1, "test": 1})
    assert [example_to_dict(e) for e in read_examples(out, "train")] == [{"text": "a"}]
    assert [example_to_dict(e) for e in read_examples(out, "test")] == [{"text": "b"}]
