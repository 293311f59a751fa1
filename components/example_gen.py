"""ExampleGen: CSV / JSONL / plain text (or any format an application's reader turns into records)
-> tf.Example TFRecord shards, split by a stable hash or by a partition field.

A record's split depends only on its key (``split_key`` fields joined with ':'), so it never moves
between splits when data is added or the pipeline re-runs; or, with ``partition_feature``, on a field
the reader set (a chronological cut of a series, whole works held out). That field is not written as a
feature: the split it names is the split the record lands in, and as a feature it would be constant per
split (SchemaGen would learn a one-value domain from train, and eval and test would look out of domain).
Every record is checked before anything is written: a malformed one stops the step with its file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import DataError
from rnnpipe.runner import fingerprint_dir

from .example_io import write_examples

FORMATS = ("jsonl", "csv", "text")


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text"}.get(suffix, "text")


def _scalar_kind(value: Any, where: str, key: str) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "bytes"
    raise DataError(f"{where}: field '{key}' has a value of type {type(value).__name__} ({value!r}); "
                    "expected a string, a number or a list of those")


def _kind(value: Any, where: str, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        kinds = {_scalar_kind(v, where, key) for v in value}
        if not kinds:
            return None
        if kinds == {"int", "float"}:
            return "float"
        if len(kinds) > 1:
            raise DataError(f"{where}: field '{key}' mixes strings and numbers in one list")
        return kinds.pop()
    return _scalar_kind(value, where, key)


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); "
                                "each line must be one JSON object") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
            yield where, record


def _parse_csv_value(text: str) -> Any:
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _read_csv(path: Path) -> Iterator[tuple[str, dict]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            return
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{where}: expected {len(header)} columns ({', '.join(header)}), got {len(row)}; "
                                "quote fields that contain commas")
            yield where, {k: _parse_csv_value(v) for k, v in zip(header, row, strict=True)}


def _read_text(path: Path) -> Iterator[tuple[str, dict]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield f"{path}:{lineno}", {"text": line.rstrip("\n")}


READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "text": _read_text}


def read_records(path: Path, fmt: str, reader: str | None = None, reader_config: dict | None = None
                 ) -> Iterator[tuple[str, dict]]:
    """(where, record) pairs: by the application's ``reader`` if given, else by the built-in format reader."""
    if not path.exists():
        raise DataError(f"data not found: {path}; fetch the default data with `rnnpipe data fetch APP` "
                        "or point data.path at your own file")
    if reader is not None:
        return Ref(reader).resolve()(path, **(reader_config or {}))
    return READERS[fmt](path)


def split_of(key: str, splits: dict[str, int]) -> str:
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % sum(splits.values())
    for name, weight in splits.items():
        if bucket < weight:
            return name
        bucket -= weight
    raise AssertionError("unreachable: bucket is below the total weight")


def infer_kinds(records: Iterator[tuple[str, dict]], path: Path, split_key: list[str],
                partition: tuple[str, dict] | None = None) -> tuple[dict[str, str], int]:
    """First pass: checks every record and infers one value kind per field (ints widen to floats).
    ``partition`` = (field, splits): the field must name one of the splits; it gets no kind (it is not
    written as a feature)."""
    kinds: dict[str, str] = {}
    count = 0
    for where, record in records:
        count += 1
        for key in split_key:
            if record.get(key) in (None, ""):
                raise DataError(f"{where}: split key field '{key}' is missing or empty")
        if partition is not None and record.get(partition[0]) not in partition[1]:
            raise DataError(f"{where}: partition field '{partition[0]}' is {record.get(partition[0])!r}; "
                            f"expected one of the splits {list(partition[1])}")
        for key, value in record.items():
            if partition is not None and key == partition[0]:
                continue
            kind = _kind(value, where, key)
            if kind is None:
                continue
            seen = kinds.get(key)
            if seen is None or seen == kind:
                kinds[key] = kind
            elif {seen, kind} == {"int", "float"}:
                kinds[key] = "float"
            else:
                raise DataError(f"{where}: field '{key}' is {kind} here but {seen} in earlier records")
    if count == 0:
        raise DataError(f"{path}: no records; the dataset is empty")
    return kinds, count


SPAN = "{SPAN}"
PREVIOUS_SPAN = "PreviousSpan"  # where the span before the latest is written, for drift checks


def resolve_spans(source: str) -> tuple[Path, int | None, Path | None]:
    """For a source with ``{SPAN}`` (e.g. ``reviews-{SPAN}.jsonl``): the latest span's file, its number,
    and the file of the span before it (None if there is none). Without ``{SPAN}``: the file itself."""
    if SPAN not in source:
        return Path(source).expanduser(), None, None
    pattern = Path(source).expanduser()
    prefix, _, suffix = pattern.name.partition(SPAN)
    found = {}
    for p in pattern.parent.glob(f"{prefix}*{suffix}"):
        middle = p.name[len(prefix):len(p.name) - len(suffix)]
        if middle.isdigit():
            found[int(middle)] = p
    if not found:
        raise DataError(f"no file matches {pattern} (with {SPAN} a number); put the data at e.g. "
                        f"{pattern.parent / (prefix + '1' + suffix)}")
    spans = sorted(found)
    return found[spans[-1]], spans[-1], found[spans[-2]] if len(spans) > 1 else None


def run_example_gen(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: Any) -> dict:
    path, span, previous = resolve_spans(params["source"])
    root = outputs["examples"].path()
    counts, kinds = _write_span(path, root, params, ctx)
    info = {"counts": counts, "kinds": kinds, "source": str(path), "span": span}
    if previous is not None:
        info["previous_span"] = {"source": str(previous), "counts": _write_span(previous, root / PREVIOUS_SPAN,
                                                                                params, ctx)[0]}
    (root / "splits.json").write_text(json.dumps(info, indent=1))
    return {f"examples_{k}": v for k, v in counts.items()}


def _write_span(path: Path, root: Path, params: dict, ctx: Any) -> tuple[dict[str, int], dict[str, str]]:
    fmt = detect_format(path) if params["format"] == "auto" else params["format"]
    if fmt not in FORMATS:
        raise DataError(f"ExampleGen: format must be one of {FORMATS} or 'auto', got '{fmt}'")
    splits, split_key, partition = params["splits"], list(params["split_key"]), params["partition_feature"]

    def records() -> Iterator[tuple[str, dict]]:
        return read_records(path, fmt, params["reader"], params["reader_config"])

    kinds, total = infer_kinds(records(), path, split_key, (partition, splits) if partition else None)
    ctx.log(f"{total} records from {path} ({params['reader'] or fmt}); fields: {kinds}")

    def keyed() -> Iterator[tuple[str, dict]]:
        for _, record in records():
            if partition:  # the field names the split; it is not a feature of the example
                yield record[partition], {k: v for k, v in record.items() if k != partition}
                continue
            key = ":".join(str(record[k]) for k in split_key) if split_key else json.dumps(record, sort_keys=True)
            yield split_of(key, splits), record

    counts = write_examples(keyed(), kinds, root, list(splits), params["num_shards"])
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"{path}: split(s) {', '.join(empty)} got no records out of {total}; "
                        "add data or change example_gen.splits")
    return counts, kinds


class ExampleGen(Component):
    """Reads a user or default data file into tf.Example shards per split."""

    INPUTS: dict = {}
    OUTPUTS = {"examples": "Examples"}
    PARAMETERS = {
        "source": Param(str, doc="a .jsonl, .csv or text file (or what the reader reads); with {SPAN} in the "
                                 "name, the latest span"),
        "format": Param(str, "auto", doc="jsonl | csv | text | auto (by extension); ignored with a reader"),
        "reader": Param(Ref, None, doc="'module:function' (path, **reader_config) -> iterator of (where, record)"),
        "reader_config": Param(dict, {}, doc="keyword arguments for the reader"),
        "split_key": Param(list, [], doc="fields whose values decide the split; [] = the whole record"),
        "partition_feature": Param((str, type(None)), None,
                                   doc="a field whose value is the record's split, instead of hashing; "
                                       "dropped from the written examples (the split directory says it)"),
        "splits": Param(dict, {"train": 80, "eval": 10, "test": 10}, doc="split name -> weight"),
        "num_shards": Param(int, 2),
    }
    executor = staticmethod(run_example_gen)

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        try:
            path, _, previous = resolve_spans(self.params["source"])
        except DataError:
            return "missing"
        if not path.exists():
            return "missing"
        files = [f for f in (path, previous) if f is not None]
        return hashlib.sha256("".join(fingerprint_dir(f) for f in files).encode()).hexdigest()

