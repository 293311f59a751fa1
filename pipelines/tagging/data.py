"""Tagging data: CoNLL-U sentences -> ``{tokens, tags, text, sent_id, source}`` records.

The default data are the Turkish web and wiki treebanks (Google's Turkish Web Treebank in CoNLL-U with
Universal POS tags, 4,851 sentences, 81,370 tokens) that ship inside the wheel of
``turkish-treebanks==1.0.0`` as ``data/web.conllu`` and ``data/wiki.conllu``. The files are taken out of
the downloaded wheel rather than installing it (it would put a top-level ``data/`` package into
site-packages). Any other CoNLL-U file, or a folder of ``*.conllu`` files, works the same way.

Tokens are the syntactic words of a sentence (CoNLL-U lines with an integer ID): multiword-token ranges
(``1-2``) and empty nodes (``1.1``) are skipped. ``text`` is the tokens joined by single spaces, which is
exactly what the serving signature splits on whitespace; whitespace inside a word form (allowed in some
treebanks) becomes ``_`` so that the two always agree.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import conllu
from conllu.exceptions import ParseException

from rnnpipe.components.example_gen import decode_utf8, text_lines
from rnnpipe.data_cache import atomic_write_text, pip_download
from rnnpipe.errors import DataError

REQUIREMENT = "turkish-treebanks==1.0.0"
SHA256 = "5a009c29a8e96e8f7e25059d59ac293c3baead6d746bf0fa4c9d3349b1e37ba0"  # its wheel on PyPI
WHEEL_FILES = ("data/web.conllu", "data/wiki.conllu")
DEFAULT_FOLDER = "turkish-treebanks-1.0.0"
COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
TAG_COLUMNS = ("upos", "xpos")
SUFFIXES = (".conllu", ".conll")


def extract_treebanks(wheel: Path, dest: Path) -> list[Path]:
    """Writes the wheel's ``data/*.conllu`` files into ``dest`` (each atomically); returns their paths."""
    written = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member in WHEEL_FILES:
            if member not in names:
                raise DataError(f"{wheel}: {member} missing from the wheel; expected {', '.join(WHEEL_FILES)}")
            target = dest / Path(member).name
            atomic_write_text(target, decode_utf8(zf.read(member), f"{wheel}!{member}"))
            written.append(target)
    return written


def fetch(dest: Path) -> Path:
    """Puts the default treebanks into the folder ``dest`` once; returns the folder."""
    if all((dest / Path(m).name).exists() for m in WHEEL_FILES):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        extract_treebanks(pip_download(REQUIREMENT, Path(tmp), sha256=SHA256, wheel=True), dest)
    return dest


def conllu_files(path: Path) -> list[Path]:
    """The file itself, or the CoNLL-U files of a folder (sorted, so record order is stable)."""
    if not path.exists():
        raise DataError(f"data not found: {path}; fetch the default data with `rnnpipe data fetch tagging` "
                        "or point data.path at a CoNLL-U file or a folder of them")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"{path}: no *.conllu files in this folder")
    return files


def _blocks(path: Path) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """(line number of its first line, [(line number, line), ...]) per blank-line-separated sentence."""
    block: list[tuple[int, str]] = []
    for lineno, line in text_lines(path):
        line = line.rstrip("\r\n")
        if line.strip():
            block.append((lineno, line))
        elif block:
            yield block[0][0], block
            block = []
    if block:
        yield block[0][0], block


def read_conllu(path: Path, *, tag_column: str = "upos") -> Iterator[tuple[str, dict]]:
    """ExampleGen reader: one record per sentence of a CoNLL-U file (or of every file in a folder).

    Every token line must have the file's number of tab-separated columns (10, or the columns a
    ``# global.columns`` comment names); a tag of ``_`` (not annotated) is an error too: both stop the
    run with the file and line.
    """
    if tag_column not in TAG_COLUMNS:
        raise DataError(f"reader_config.tag_column must be one of {', '.join(TAG_COLUMNS)}, got '{tag_column}'")
    for file in conllu_files(Path(path)):
        columns = list(COLUMNS)
        for number, (first_line, block) in enumerate(_blocks(file), 1):
            where = f"{file}:{first_line}"
            comments = [line for _, line in block if line.startswith("#")]
            for comment in comments:
                if comment.startswith("# global.columns ="):
                    columns = [c.lower() for c in comment.split("=", 1)[1].split()]
            missing = [c for c in ("id", "form", tag_column) if c not in columns]
            if missing:
                raise DataError(f"{file}:{first_line}: the columns {columns} lack {', '.join(missing)}")
            tokens, tags = [], []
            for lineno, line in block:
                if line.startswith("#"):
                    continue
                fields = line.split("\t")
                if len(fields) != len(columns):
                    raise DataError(f"{file}:{lineno}: expected {len(columns)} tab-separated columns "
                                    f"({' '.join(c.upper() for c in columns)}), got {len(fields)}: {line[:80]!r}; "
                                    "fix the line (spaces instead of tabs?) or remove it")
                try:
                    token_id = conllu.parser.parse_id_value(fields[columns.index("id")])
                except ParseException as e:
                    raise DataError(f"{file}:{lineno}: bad ID column: {e}") from None
                if not isinstance(token_id, int):
                    continue  # a multiword-token range (1-2) or an empty node (1.1): not a syntactic word
                form, tag = fields[columns.index("form")], fields[columns.index(tag_column)]
                if tag in ("", "_"):
                    raise DataError(f"{file}:{lineno}: token {form!r} has no {tag_column.upper()} tag ('{tag}'); "
                                    f"annotate it or remove the sentence")
                # Whitespace inside a form would make the joined text split differently at serving time.
                tokens.append(re.sub(r"\s+", "_", form.strip()) or "_")
                tags.append(tag)
            if not tokens:
                raise DataError(f"{where}: a sentence without any word lines (only comments or ranges)")
            metadata = conllu.parse_token_and_metadata("\n".join(comments)).metadata if comments else {}
            sent_id = metadata.get("sent_id") or f"{file.name}:{number}"
            yield where, {"tokens": tokens, "tags": tags, "text": " ".join(tokens), "sent_id": sent_id,
                          "source": file.stem}
