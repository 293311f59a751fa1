from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnpipe.artifacts import Examples
from rnnpipe.components.example_gen import (
    ExampleGen,
    decode_utf8,
    read_records,
    resolve_spans,
    run_example_gen,
    split_of,
    text_lines,
)
from rnnpipe.components.example_io import example_to_dict, read_examples
from rnnpipe.dsl import Artifact
from rnnpipe.errors import ConfigError, DataError

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
    counts = Examples.read_info(out).counts
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
    assert "split" not in Examples.read_info(out).kinds
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


def read_all(path: Path, **column_types: str) -> list[dict]:
    fmt = {".csv": "csv", ".jsonl": "jsonl"}.get(path.suffix, "text")
    return [r for _, r in read_records(path, fmt, column_types=column_types)]


def test_csv_columns_are_typed_by_all_their_values_not_cell_by_cell(tmp_path: Path) -> None:
    src = tmp_path / "reviews.csv"
    src.write_text("id,code,text,label,score,ratio,part\n"
                   "258_8,007,10,1,0.5,1,train\n"
                   "421_13,12,fine film,0,-3,nan,test\n"
                   "7,3,,1,1e-3,inf,train\n")
    rows = read_all(src)
    # An underscore or a leading zero is no digit: those columns stay text, as does a text that is a number.
    assert [r["id"] for r in rows] == ["258_8", "421_13", "7"] and [r["code"] for r in rows] == ["007", "12", "3"]
    assert [r["text"] for r in rows] == ["10", "fine film", None]
    assert [r["label"] for r in rows] == [1, 0, 1] and [r["score"] for r in rows] == [0.5, -3.0, 0.001]
    assert rows[0]["ratio"] == 1.0 and math.isnan(rows[1]["ratio"]) and rows[2]["ratio"] == math.inf
    out = run(tmp_path, src, partition_feature="part", splits={"train": 1, "test": 1})
    kinds = json.loads((out / "splits.json").read_text())["kinds"]
    assert kinds == {"id": "bytes", "code": "bytes", "text": "bytes", "label": "int", "score": "float",
                     "ratio": "float"}
    back = {example_to_dict(e)["id"]: example_to_dict(e) for s in ("train", "test") for e in read_examples(out, s)}
    assert back["258_8"]["text"] == "10" and back["258_8"]["code"] == "007"


def test_declared_column_types_win_and_a_value_that_does_not_parse_names_file_line_and_column(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("id,text,label\n1,10,1\n2,12,0\n")
    assert [r["id"] for r in read_all(src, id="string", label="float")] == ["1", "2"]
    assert [r["label"] for r in read_all(src, id="string", label="float")] == [1.0, 0.0]
    src.write_text("id,text,label\n1,good,1\n2,bad,1_0\n")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'label' is '1_0', not an int \(example_gen\.column_types "
                                        r"declares 'label: int'\)"):
        read_all(src, label="int")
    with pytest.raises(DataError, match=r"d\.csv:1: example_gen\.column_types declares 'lable', not in the header"):
        read_all(src, lable="int")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "ok", "label": 1}\n{"text": 10, "label": 0}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'text' is 10, not a string"):
        read_all(jsonl, text="string", label="int")
    assert read_all(jsonl, label="float")[1] == {"text": 10, "label": 0.0}


def test_a_utf8_bom_is_dropped_by_every_reader(tmp_path: Path) -> None:
    bom = "\ufeff"
    (tmp_path / "b.jsonl").write_text(bom + '{"id": "a", "text": "x"}\n', encoding="utf-8")
    (tmp_path / "b.csv").write_text(bom + "id,text\na,x\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text(bom + "x\n", encoding="utf-8")
    assert read_all(tmp_path / "b.jsonl") == [{"id": "a", "text": "x"}]
    assert read_all(tmp_path / "b.csv") == [{"id": "a", "text": "x"}]  # the header's first name is 'id'
    assert read_all(tmp_path / "b.txt") == [{"text": "x"}]
    assert decode_utf8(b"\xef\xbb\xbfx\n", "raw") == "x\n"


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.csv", "bad.txt"])
def test_undecodable_bytes_name_file_line_and_byte_offset(tmp_path: Path, name: str) -> None:
    head = {"bad.jsonl": '{"text": "ok"}\n', "bad.csv": "text\nok\n", "bad.txt": "ok\n"}[name].encode()
    # Far past the first read buffer, after a BOM: the offset counts from the file's first byte.
    body = b"\xef\xbb\xbf" + head + b'{"text": "fine"}\n' * 1000
    bad_line = body.count(b"\n") + 1
    src = tmp_path / name
    src.write_bytes(body + b'{"text": "caf\xe9"}\n')
    offset = len(body) + len(b'{"text": "caf')
    with pytest.raises(DataError, match=rf"bad\.\w+:{bad_line}: not valid UTF-8 at byte offset {offset} \(0xe9\); "
                                        r"re-save the file as UTF-8"):
        read_all(src)
    with pytest.raises(DataError, match=r"raw:2: not valid UTF-8 at byte offset 7 \(0xff\)"):
        decode_utf8(b"\xef\xbb\xbfok\nx\xffy", "raw")


def test_a_directory_or_a_missing_file_as_the_source_is_named(tmp_path: Path) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(DataError, match=r"folder\.jsonl: is a directory; data\.path must name a \.jsonl, \.csv or "
                                        r"text file"):
        run(tmp_path, tmp_path / "folder.jsonl")
    with pytest.raises(DataError, match=r"data not found: .*absent\.csv"):
        list(text_lines(tmp_path / "absent.csv"))


@pytest.mark.parametrize(("params", "message"), [
    ({"splits": {"train": 8, "eval": 0}}, r"example_gen\.splits: the weight of 'eval' must be a positive integer"),
    ({"splits": {"train": 0.8, "eval": 0.2}}, r"example_gen\.splits: the weight of 'train' must be a positive"),
    ({"splits": {}}, r"example_gen\.splits is empty"),
    ({"num_shards": 0}, r"'num_shards' .*>= 1"),
    ({"column_types": {"text": "str"}}, r"example_gen\.column_types\.text must be one of string, int, float"),
    ({"format": "parquet"}, r"example_gen\.format must be one of jsonl, csv, text or auto"),
])
def test_parameters_are_checked_when_the_pipeline_is_built(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExampleGen(source="x.jsonl", **params)
