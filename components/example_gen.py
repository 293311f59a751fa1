"""ExampleGen: CSV / JSONL / plain text (or any format an application's reader turns into records)
-> tf.Example TFRecord shards, split by a stable hash or by a partition field.

A record's split depends only on its key (``split_key`` fields joined with ':'), so it never moves
between splits when data is added or the pipeline re-runs; or, with ``partition_feature``, on a field
the reader set (a chronological cut of a series, whole works held out). That field is not written as a
feature: the split it names is the split the record lands in, and as a feature it would be constant per
split (SchemaGen would learn a one-value domain from train, and eval and test would look out of domain).
Every record is checked before anything is written: a malformed one stops the step with its file and line.

CSV cells are typed per column, never per cell: by ``column_types`` where declared, else by all the
column's values (int only if every value is a plain integer, float if every value is a number, text
otherwise), so a review whose text is ``10`` stays text and an id ``258_8`` is not read as 2588. Every
text file is read as UTF-8 (a BOM is dropped); a byte that is not UTF-8 stops the step with its file,
line and byte offset. The helpers for that (``text_lines``, ``decode_utf8``, ``require_file``) are the
applications' readers' too.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnpipe.artifacts import Examples, ExamplesInfo
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import ConfigError, DataError
from rnnpipe.fingerprint import fingerprint_dir

FORMATS = ("jsonl", "csv", "text")


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text"}.get(suffix, "text")


INT64 = (-2**63, 2**63 - 1)


def _scalar_kind(value: Any, where: str, key: str) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise DataError(f"{where}: field '{key}' is {value}, outside the 64-bit integer range; "
                            "write it as a string if it is an identifier")
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


# --- text files: UTF-8 (a BOM is dropped), undecodable bytes named by file, line and byte offset -----------

def require_file(path: Path, expected: str = "a data file") -> None:
    """A DataError naming ``path`` unless it is an existing file; ``expected`` says what data.path should name."""
    if not path.exists():
        raise DataError(f"data not found: {path}; fetch the default data with `rnnpipe data fetch APP` "
                        f"or point data.path at {expected}")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise DataError(f"{path}: is {kind}; data.path must name {expected}")


BOM = b"\xef\xbb\xbf"


def _not_utf8(name: str, line: int, offset: int, byte: int) -> DataError:
    return DataError(f"{name}:{line}: not valid UTF-8 at byte offset {offset} (0x{byte:02x}); re-save the file "
                     "as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`")


def undecodable(path: Path) -> DataError:
    """The DataError for a file that does not decode as UTF-8: the line and file offset of its first bad byte.
    A newline byte is never part of a multi-byte sequence, so each line decodes on its own."""
    offset = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return _not_utf8(str(path), lineno, offset + e.start, raw[e.start])
            offset += len(raw)
    return DataError(f"{path}: not valid UTF-8 (the file changed while it was read?); re-save it as UTF-8")


def decode_utf8(raw: bytes, name: str) -> str:
    """``raw`` as text (a leading BOM dropped); a DataError naming ``name``:line and the byte offset if not UTF-8."""
    bom = len(BOM) if raw.startswith(BOM) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        start = bom + e.start
        raise _not_utf8(name, raw[:start].count(b"\n") + 1, start, raw[start]) from None


def text_lines(path: Path, *, newline: str | None = None) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file; a BOM is dropped, undecodable bytes are a DataError naming the
    file, line and byte offset. ``newline`` as for ``open`` ("" for the csv module)."""
    require_file(path, "a UTF-8 text file")
    with open(path, encoding="utf-8-sig", newline=newline) as fh:
        try:
            yield from enumerate(fh, 1)
        except UnicodeDecodeError:
            raise undecodable(path) from None


# --- the built-in readers ---------------------------------------------------------------------------------

COLUMN_TYPES = ("string", "int", "float")
# Inferred numbers: no underscores, no leading zeros (an id such as 007 or 258_8 stays text), blanks around
# allowed. A declared int or float also accepts leading zeros; nan and inf are floats (the validator flags them).
_INFERRED = {"int": re.compile(r"[ \t]*[+-]?(?:0|[1-9][0-9]*)[ \t]*"),
             "float": re.compile(r"[ \t]*(?:[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                                 r"|[+-]?inf(?:inity)?|[+-]?nan)[ \t]*", re.IGNORECASE)}
DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # a finite number, leading zeros ok
_DECLARED = {"int": re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*"),
             "float": re.compile(rf"[ \t]*(?:{DECIMAL.pattern}|[+-]?inf(?:inity)?|[+-]?nan)[ \t]*", re.IGNORECASE)}


def _a(kind: str) -> str:
    return f"an {kind}" if kind == "int" else f"a {kind}"


def _declared_value(value: Any, kind: str, where: str, key: str) -> Any:
    """A JSON value checked against the column type ``example_gen.column_types`` declares (ints widen to float)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_declared_value(v, kind, where, key) for v in value]
    ok = {"string": isinstance(value, str), "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    if not ok:
        raise DataError(f"{where}: field '{key}' is {value!r}, not {_a(kind)} (example_gen.column_types declares "
                        f"'{key}: {kind}'); fix the value or the declaration")
    return float(value) if kind == "float" else value


def json_objects(path: Path) -> Iterator[tuple[str, dict]]:
    """('file:line', object) per non-empty line of a JSON-lines file; a line that is not one JSON object stops
    with a DataError naming it."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg.removesuffix(' at')}, column {e.colno}); "
                            "each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
        yield where, record


def manifest_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """('file:line', row) per row of a manifest of files (audio, images): CSV with a header (every value a
    string) when the name ends in .csv, else JSON lines."""
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(line for _, line in text_lines(path, newline=""))
        for row in reader:
            yield f"{path}:{reader.line_num}", dict(row)
        return
    yield from json_objects(path)


def _read_jsonl(path: Path, column_types: dict[str, str] | None = None) -> Iterator[tuple[str, dict]]:
    declared = column_types or {}
    for where, record in json_objects(path):
        for key in declared.keys() & record.keys():
            record[key] = _declared_value(record[key], declared[key], where, key)
        yield where, record


def _csv_rows(path: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """(where, header, row) per non-empty row, each with the header's number of columns."""
    reader = csv.reader(line for _, line in text_lines(path, newline=""))
    header = next(reader, None)
    if not header:
        return
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise DataError(f"{path}:1: column name(s) {', '.join(map(repr, duplicated))} appear more than once "
                        "in the header; rename them")
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{where}: expected {len(header)} columns ({', '.join(header)}), got {len(row)}; "
                            "quote fields that contain commas")
        yield where, header, row


def csv_column_types(path: Path, declared: dict[str, str] | None = None) -> dict[str, str]:
    """Column -> string | int | float: the declared type, else the narrowest type every non-empty value has."""
    declared = declared or {}
    possible: dict[str, set[str]] = {}
    header: list[str] = []
    for _, header, row in _csv_rows(path):
        for key, text in zip(header, row, strict=True):
            kinds = possible.setdefault(key, {"int", "float"})
            if text != "" and kinds:
                kinds -= {k for k in kinds if not _INFERRED[k].fullmatch(text)}
    unknown = sorted(set(declared) - set(header))
    if header and unknown:
        raise DataError(f"{path}:1: example_gen.column_types declares {', '.join(map(repr, unknown))}, not in the "
                        f"header ({', '.join(header)}); fix the header or the declaration")
    return {key: declared.get(key) or ("int" if "int" in kinds else "float" if kinds else "string")
            for key, kinds in possible.items()}


def _csv_value(text: str, kind: str, where: str, key: str) -> Any:
    if text == "":
        return None
    if kind == "string":
        return text
    if not _DECLARED[kind].fullmatch(text):
        raise DataError(f"{where}: column '{key}' is {text!r}, not {_a(kind)} "
                        f"(example_gen.column_types declares '{key}: {kind}'); fix the value or the declaration")
    if kind == "float":
        return float(text)
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise DataError(f"{where}: column '{key}' is {text!r}, outside the 64-bit integer range; declare it "
                        f"'{key}: string' in example_gen.column_types if it is an identifier")
    return value


def _read_csv(path: Path, column_types: dict[str, str] | None = None) -> Iterator[tuple[str, dict]]:
    """Two passes: the first types every column (``csv_column_types``), the second yields typed records."""
    types = csv_column_types(path, column_types)
    for where, header, row in _csv_rows(path):
        yield where, {k: _csv_value(v, types[k], where, k) for k, v in zip(header, row, strict=True)}


def _read_text(path: Path, column_types: dict[str, str] | None = None) -> Iterator[tuple[str, dict]]:
    for lineno, line in text_lines(path):
        if line.strip():
            yield f"{path}:{lineno}", {"text": line.rstrip("\n")}


READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "text": _read_text}


def read_records(path: Path, fmt: str, reader: str | None = None, reader_config: dict | None = None,
                 column_types: dict[str, str] | None = None) -> Iterator[tuple[str, dict]]:
    """(where, record) pairs: by the application's ``reader`` if given (it may accept a folder), else by the
    built-in format reader, with ``column_types`` declared."""
    if not path.exists():
        raise DataError(f"data not found: {path}; fetch the default data with `rnnpipe data fetch APP` "
                        "or point data.path at your own file")
    if reader is not None:
        return Ref(reader).resolve()(path, **(reader_config or {}))
    require_file(path, "a .jsonl, .csv or text file")
    return READERS[fmt](path, column_types)


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


def check_params(params: dict) -> None:
    """What the parameter types cannot say, checked when the pipeline is built: a ConfigError naming the key."""
    if params["format"] not in (*FORMATS, "auto"):
        raise ConfigError(f"example_gen.format must be one of {', '.join(FORMATS)} or auto, got {params['format']!r}")
    splits = params["splits"]
    if not splits:
        raise ConfigError("example_gen.splits is empty; give each split a weight, e.g. {train: 80, eval: 10, test: 10}")
    for name, weight in splits.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ConfigError(f"example_gen.splits: the weight of '{name}' must be a positive integer, got {weight!r}")
    for column, kind in params["column_types"].items():
        if kind not in COLUMN_TYPES:
            raise ConfigError(f"example_gen.column_types.{column} must be one of {', '.join(COLUMN_TYPES)}, "
                              f"got {kind!r}")


def run_example_gen(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                    ctx: ExecutionContext) -> dict:
    path, span, previous = resolve_spans(params["source"])
    root = outputs["examples"].path()
    counts, kinds = _write_span(path, root, params, ctx)
    previous_span = None
    if previous is not None:  # written beside the latest span for the drift checks
        previous_span = {"source": str(previous),
                         "counts": _write_span(previous, Examples.previous_span(root), params, ctx)[0]}
    Examples.write_info(root, ExamplesInfo(counts, kinds, str(path), span, previous_span,
                                           source_pattern=str(Path(params["source"]).expanduser().resolve())))
    if span is not None:  # which span the run trained on, to filter runs by in MLflow
        ctx.tracker.set_tag("rnnpipe.span", span)
    return {f"examples_{k}": v for k, v in counts.items()} | ({} if span is None else {"span": span})


def _write_span(path: Path, root: Path, params: dict, ctx: ExecutionContext) -> tuple[dict[str, int], dict[str, str]]:
    fmt = detect_format(path) if params["format"] == "auto" else params["format"]
    splits, split_key, partition = params["splits"], list(params["split_key"]), params["partition_feature"]

    def records() -> Iterator[tuple[str, dict]]:
        return read_records(path, fmt, params["reader"], params["reader_config"], params["column_types"])

    kinds, total = infer_kinds(records(), path, split_key, (partition, splits) if partition else None)
    ctx.log(f"{total} records from {path} ({params['reader'] or fmt}); fields: {kinds}")

    def keyed() -> Iterator[tuple[str, dict]]:
        for _, record in records():
            if partition:  # the field names the split; it is not a feature of the example
                yield record[partition], {k: v for k, v in record.items() if k != partition}
                continue
            key = ":".join(str(record[k]) for k in split_key) if split_key else json.dumps(record, sort_keys=True)
            yield split_of(key, splits), record

    from .example_io import write_examples  # TensorFlow: only when records are written, not to read a source

    counts = write_examples(keyed(), kinds, root, list(splits), params["num_shards"])
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"{path}: split(s) {', '.join(empty)} got no records out of {total}; "
                        "add data or change example_gen.splits")
    return counts, kinds


class ExampleGen(Component):
    """Reads a user or default data file into tf.Example shards per split."""

    INPUTS: dict = {}
    OUTPUTS = {"examples": Examples.TYPE}
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
        "splits": Param(dict, {"train": 80, "eval": 10, "test": 10}, doc="split name -> weight (a positive integer)"),
        "num_shards": Param(int, 2, doc="TFRecord files per split", min=1),
        "column_types": Param(dict, {}, doc="CSV column (or JSONL field) -> string | int | float; undeclared CSV "
                                            "columns are typed by all their values"),
    }
    executor = staticmethod(run_example_gen)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_params(self.params)

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        try:
            path, _, previous = resolve_spans(self.params["source"])
        except DataError:
            return "missing"
        if not path.exists():
            return "missing"
        files = [f for f in (path, previous) if f is not None]
        return hashlib.sha256("".join(fingerprint_dir(f) for f in files).encode()).hexdigest()

