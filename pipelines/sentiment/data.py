"""The default sentiment data: VADER's human-rated sentences (Hutto & Gilbert, ICWSM 2014).

The four ``*_GroundTruth.txt`` files ship inside the sdist of ``vaderSentiment==3.3.2`` (in
``additional_resources/hutto_ICWSM_2014.tar.gz``): tab-separated id, mean human score in [-4, 4],
text. With two classes, sentences whose |score| is at most ``neutral_band`` have no polarity and are dropped
(with the default 0.0 only exact zeros); the rest get label 1 (positive, score > 0) or 0 (negative). With three,
they are the neutral class: labels 0 (negative), 1 (neutral), 2 (positive).
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

from rnnpipe.components.example_gen import decode_utf8, text_lines
from rnnpipe.data_cache import atomic_write_text, pip_download
from rnnpipe.errors import DataError

CLASS_NAMES = ["negative", "positive"]  # label 0 and 1
THREE_CLASS_NAMES = ["negative", "neutral", "positive"]  # data.classes: 3
REQUIREMENT = "vaderSentiment==3.3.2"
SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"  # its sdist on PyPI
SOURCES = {
    "movieReviewSnippets_GroundTruth.txt": "movie",
    "tweets_GroundTruth.txt": "tweets",
    "amazonReviewSnippets_GroundTruth.txt": "amazon",
    "nytEditorialSnippets_GroundTruth.txt": "nyt",
}


def class_names(classes: int) -> list[str]:
    return THREE_CLASS_NAMES if classes == 3 else CLASS_NAMES


def label(score: float, neutral_band: float, classes: int = 2) -> int | None:
    """The class of a mean human rating; None for a two-class neutral (dropped)."""
    if abs(score) <= neutral_band:
        return 1 if classes == 3 else None
    return (2 if classes == 3 else 1) if score > 0 else 0


def parse_ground_truth(name: str, text: str, source: str, neutral_band: float, classes: int = 2) -> list[dict]:
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise DataError(f"{name}:{lineno}: expected 'id<TAB>score<TAB>text', got {line[:80]!r}")
        rid, score_text, sentence = parts
        try:
            score = float(score_text)
        except ValueError:
            raise DataError(f"{name}:{lineno}: score {score_text!r} is not a number") from None
        cls = label(score, neutral_band, classes)
        if cls is not None:
            records.append({"id": rid.strip(), "source": source, "score": score, "text": sentence.strip(),
                            "label": cls})
    return records


def records_from_sdist(sdist: Path, neutral_band: float = 0.0, classes: int = 2) -> list[dict]:
    with tarfile.open(sdist) as outer:
        member = next((m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")), None)
        if member is None:
            raise DataError(f"{sdist}: no additional_resources/hutto_ICWSM_2014.tar.gz inside")
        inner_bytes = outer.extractfile(member).read()
    records: list[dict] = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        names = {Path(m.name).name: m for m in inner.getmembers()}
        for filename, source in SOURCES.items():
            if filename not in names:
                raise DataError(f"{sdist}: {filename} missing from hutto_ICWSM_2014.tar.gz")
            text = decode_utf8(inner.extractfile(names[filename]).read(), f"{sdist}!{filename}")
            records += parse_ground_truth(filename, text, source, neutral_band, classes)
    return records


def lexicon_from_sdist(sdist: Path) -> str:
    """VADER's word valence lexicon: ``token<TAB>mean rating in [-4, 4]<TAB>std<TAB>ratings``."""
    with tarfile.open(sdist) as outer:
        member = next((m for m in outer.getmembers() if m.name.endswith("vaderSentiment/vader_lexicon.txt")), None)
        if member is None:
            raise DataError(f"{sdist}: no vaderSentiment/vader_lexicon.txt inside")
        return decode_utf8(outer.extractfile(member).read(), f"{sdist}!{member.name}")


def fetch(dest: Path, lexicon: Path, neutral_band: float = 0.0, classes: int = 2) -> Path:
    """Writes the sentences to ``dest`` (JSONL) and the word lexicon to ``lexicon`` once (``dest`` is named by
    the classes and the band: another choice is another file)."""
    if dest.exists() and lexicon.exists():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        sdist = pip_download(REQUIREMENT, Path(tmp), sha256=SHA256)
        records = records_from_sdist(sdist, neutral_band, classes)
        atomic_write_text(lexicon, lexicon_from_sdist(sdist))
    atomic_write_text(dest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return dest


def read_lexicon(path: Path) -> dict[str, float]:
    scores = {}
    for lineno, line in text_lines(path):
        parts = line.rstrip("\r\n").split("\t")
        try:
            scores[parts[0]] = float(parts[1])
        except (IndexError, ValueError):
            raise DataError(f"{path}:{lineno}: expected 'token<TAB>score...', got {line[:80]!r}") from None
    return scores
