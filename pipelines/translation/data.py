"""Translation data: the default English-Spanish Bible verse pairs, and the reader of sentence-pair files.

The default data are the King James Bible (Debian ``sword-text-kjv``, SWORD module ``engKJV2006eb``) and
the Reina-Valera 1909 (Debian ``sword-text-sparv``, module ``spaRV1909eb``), exported with ``mod2imp -s``
(Debian ``libsword-utils``), which drops the OSIS markup, Strong's numbers and the KJV's footnotes. What
markup survives the export (a few ``<H1234>`` Strong's tags in the RV1909, ``[bracketed]`` KJV words) is
removed here, and the RV1909's drop capitals (``EN el principio``) are written as ordinary words. Both
modules use the KJV versification, so verses align one to one by reference, except in eight chapters where
the RV1909's text is numbered otherwise (``RENUMBERED`` maps them), and the RV1909's psalm titles,
which the KJV module lacks, are removed: 31,077 pairs with text on both sides. ``fetch`` writes them as JSONL
(``source``, ``target``, ``ref``, ``group`` = book and chapter).

``read_pairs`` reads a TSV (``source<TAB>target`` per line) or a JSONL file (``source`` and ``target``
strings, optional ``group``) and routes each pair to a split by a hash of its ``group`` (whole chapters
for the Bible: neighbouring verses repeat phrases, so a verse-level split would leak) or, without one,
of its source sentence. A line with the wrong number of fields, an empty side or bytes that are not
UTF-8 stops the run with ``file:line``. Pairs longer than ``max_words`` whitespace words on either side
are the length cut of the default config (see config.yaml for why 50): with ``split_long`` such a pair is
split into its clauses when both sides have as many (``clause_pairs``), else it is skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from rnnpipe.components.example_gen import json_objects, split_of, text_lines
from rnnpipe.data_cache import atomic_write_text
from rnnpipe.errors import ConfigError, DataError

SOURCE_KEY, TARGET_KEY, GROUP_KEY, REF_KEY, SPLIT_KEY = "source", "target", "group", "ref", "split"
# SWORD module -> the Debian package that installs it.
MODULES = {"engKJV2006eb": "sword-text-kjv", "spaRV1909eb": "sword-text-sparv"}
SOURCE_MODULE, TARGET_MODULE = "engKJV2006eb", "spaRV1909eb"
EXPORTER, EXPORTER_PACKAGE = "mod2imp", "libsword-utils"
# v2: the RV1909's chapters numbered otherwise mapped onto the KJV's verses, and its psalm titles removed.
DEFAULT_FILE = "kjv-rv1909-v2.jsonl"
SUPERSEDED_FILES = ("kjv-rv1909.jsonl",)  # earlier versions' exports (10 MB each), removed from the cache
# Where the RV1909 numbers verses otherwise than the KJV (mostly as the Hebrew Bible does; Job 39-40 as the old
# Reina-Valera; one verse of II Chronicles 33 holds two of the KJV's), the module keeps its text in the KJV's
# verse slots: pairing by reference would pair unrelated verses (found by correlating verse lengths across
# each chapter, and read). Spanish (book, chapter) -> [(first, last, KJV chapter, shift)]: its verses
# first..last are the KJV verses first + shift.. of that chapter. A verse left out holds two KJV verses (the
# extra verse folded into one slot), which no pair matches.
RENUMBERED = {
    ("Numbers", 13): [(1, 1, 12, 15), (2, 32, 13, -1)],
    ("Numbers", 30): [(1, 1, 29, 39), (2, 15, 30, -1)],
    ("I Samuel", 24): [(1, 1, 23, 28), (2, 21, 24, -1)],
    ("II Chronicles", 33): [(1, 9, 33, 0), (11, 24, 33, 1)],
    ("Job", 39): [(1, 3, 38, 38), (4, 29, 39, -3)],
    ("Job", 40): [(1, 19, 40, 5)],
    ("Hosea", 12): [(1, 1, 11, 11), (2, 13, 12, -1)],
    ("Jonah", 2): [(1, 1, 1, 16), (2, 9, 2, -1)],
}
# "$$$Genesis 1:1", "$$$1 Kings 2:3", "$$$Song of Solomon 1:1"; chapter or verse 0 are book and chapter headings.
_REFERENCE = re.compile(r"^(?P<book>.+) (?P<chapter>\d+):(?P<verse>\d+)$")
_TAG = re.compile(r"<[^>]*>")
_LETTERS = re.compile(r"[^\W\d_]+")


def clean_verse(text: str, *, drop_capital: bool = False, casing: dict[str, str] | None = None) -> str:
    """One exported verse as plain text: leftover tags and brackets removed, whitespace collapsed, and with
    ``drop_capital`` the leading upper-case words (a drop capital) written as the text writes them elsewhere
    (``casing``: lower-case form -> commonest form; lower case when unknown), the first one capitalized."""
    # ¶ is the KJV's paragraph mark, not a word of the verse.
    text = _TAG.sub(" ", text).replace("[", "").replace("]", "").replace("\u00b6", " ")
    words = text.split()
    if drop_capital:
        # The drop capital may span words ("Y ACONTECIÓ en los días"): the leading run of upper-case words.
        letters = ["".join(_LETTERS.findall(w)) for w in words]
        run = next((i for i, w in enumerate(letters) if not (w and w.isupper())), len(words))
        if run and max(len(w) for w in letters[:run]) > 1:
            words[:run] = [_recased(w, casing or {}) for w in words[:run]]
            at = next((i for i, c in enumerate(words[0]) if c.isalpha()), 0)
            words[0] = words[0][:at] + words[0][at:at + 1].upper() + words[0][at + 1:]
    return " ".join(words)


def _recased(word: str, casing: dict[str, str]) -> str:
    lower = word.lower()
    core = "".join(_LETTERS.findall(lower))
    return lower.replace(core, casing[core], 1) if core in casing else lower


def word_casing(verses: Iterable[str]) -> dict[str, str]:
    """Lower-case word -> its commonest written form outside a verse's first word (so ``abraham`` ->
    ``Abraham``, ``aconteció`` -> ``aconteció``)."""
    forms: dict[str, Counter] = defaultdict(Counter)
    for verse in verses:
        for word in verse.split()[1:]:
            core = "".join(_LETTERS.findall(word))
            if core and not (len(core) > 1 and core.isupper()):
                forms[core.lower()][core] += 1
    return {lower: counts.most_common(1)[0][0] for lower, counts in forms.items()}


def parse_imp(text: str, *, drop_capital: bool = False) -> dict[str, str]:
    """mod2imp's output -> {"Book C:V": verse text} for every verse with text (headings skipped). With
    ``drop_capital`` (the RV1909), a psalm's title ahead of its drop capital is removed, as the KJV module
    has none."""
    raw: dict[str, str] = {}
    for block in text.split("$$$")[1:]:
        reference, _, body = block.partition("\n")
        match = _REFERENCE.match(reference.strip())
        if not match or int(match["chapter"]) == 0 or int(match["verse"]) == 0:
            continue
        if drop_capital and match["book"] == "Psalms" and int(match["verse"]) == 1:
            body = without_title(_TAG.sub(" ", body))
        raw[reference.strip()] = body
    casing = word_casing(clean_verse(body) for body in raw.values()) if drop_capital else None
    verses = {ref: clean_verse(body, drop_capital=drop_capital, casing=casing) for ref, body in raw.items()}
    return {ref: verse for ref, verse in verses.items() if verse}


def without_title(verse: str) -> str:
    """A first verse less the words before its drop capital (the upper-case run that opens a chapter):
    ``Salmo de David. A TI, oh Jehová`` -> ``A TI, oh Jehová``. Unchanged without one, with one first, or when
    what precedes it is ``Aleluya.``, which the KJV translates in the verse."""
    words = verse.split()
    letters = ["".join(_LETTERS.findall(w)) for w in words]
    capital = next((i for i, w in enumerate(letters) if len(w) > 1 and w.isupper()), None)
    if not capital:
        return verse
    while capital and letters[capital - 1] and letters[capital - 1].isupper():  # "A TI": the run's start
        capital -= 1
    if "".join(letters[:capital]).lower() == "aleluya":  # not a title: the KJV's "Praise ye the LORD."
        return verse
    return " ".join(words[capital:])


def renumbered(verses: dict[str, str], table: dict[tuple[str, int], list[tuple[int, int, int, int]]]
               ) -> dict[str, str]:
    """``verses`` with the chapters of ``table`` (as ``RENUMBERED``) moved to the other text's references; their
    verses outside the table's ranges are left out."""
    out = {}
    for reference, text in verses.items():
        match = _REFERENCE.match(reference)
        book, chapter, verse = match["book"], int(match["chapter"]), int(match["verse"])
        if (book, chapter) in table:
            moved = [f"{book} {to}:{verse + shift}" for first, last, to, shift in table[book, chapter]
                     if first <= verse <= last]
            if not moved:
                continue
            reference = moved[0]
        if reference in out:
            raise DataError(f"{reference}: two verses of the target text map to it; check RENUMBERED")
        out[reference] = text
    return out


def export_module(module: str) -> str:
    """The plain-text export of a SWORD module; a DataError naming the Debian package when it is missing."""
    exporter = shutil.which(EXPORTER)
    if exporter is None:
        raise DataError(f"`{EXPORTER}` not found on PATH: it exports the Bible texts; install the Debian package "
                        f"{EXPORTER_PACKAGE} (`sudo apt-get install {EXPORTER_PACKAGE}`, or `make system-deps`), or "
                        "point data.path at your own TSV/JSONL of sentence pairs")
    proc = subprocess.run([exporter, module, "-s"], capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or "$$$" not in proc.stdout:
        raise DataError(f"`{EXPORTER} {module}` exported nothing ({(proc.stdout + proc.stderr).strip()[:200]!r}): "
                        f"the SWORD module {module} is missing; install the Debian package {MODULES[module]} "
                        f"(`sudo apt-get install {MODULES[module]}`, or `make system-deps`); modules are looked up "
                        f"in $SWORD_PATH, ~/.sword and /usr/share/sword")
    return proc.stdout


def aligned_pairs(source: dict[str, str], target: dict[str, str], books: list[str] | None = None) -> list[dict]:
    """Verse pairs present in both texts, in the source's order; ``books`` keeps only those books."""
    pairs = []
    for reference, text in source.items():
        match = _REFERENCE.match(reference)
        if reference not in target or (books is not None and match["book"] not in books):
            continue
        pairs.append({SOURCE_KEY: text, TARGET_KEY: target[reference], REF_KEY: reference,
                      GROUP_KEY: f"{match['book']} {match['chapter']}"})
    return pairs


def export_bible(dest: Path, books: list[str] | None = None) -> Path:
    """Writes the aligned KJV / RV1909 verse pairs to the JSONL file ``dest`` (atomically)."""
    pairs = aligned_pairs(parse_imp(export_module(SOURCE_MODULE)),
                          renumbered(parse_imp(export_module(TARGET_MODULE), drop_capital=True), RENUMBERED), books)
    if not pairs:
        raise DataError(f"no verse pairs aligned between {SOURCE_MODULE} and {TARGET_MODULE}"
                        + (f" for the books {books}" if books else "") + "; are both SWORD modules complete?")
    atomic_write_text(dest, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    return dest


def fetch(dest: Path) -> Path:
    """The default pairs file, exported once (later runs reuse it); an earlier version's export beside it is
    removed."""
    if not dest.is_file():
        export_bible(dest)
    for old in SUPERSEDED_FILES:
        (dest.parent / old).unlink(missing_ok=True)
    return dest


def _pair(fields: list, where: str) -> tuple[str, str]:
    source, target = (f.strip() for f in fields)
    for side, text in (("source", source), ("target", target)):
        if not text:
            raise DataError(f"{where}: the {side} side is empty; every line needs a sentence on both sides "
                            "(remove the line or fill it in)")
    return source, target


def _tsv(path: Path) -> Iterator[tuple[str, str, str, str | None]]:
    for lineno, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{path}:{lineno}"
        if len(fields) != 2:
            raise DataError(f"{where}: expected 2 tab-separated fields (source<TAB>target), got {len(fields)}: "
                            f"{line[:80]!r}; fix the line (a tab inside a sentence? spaces instead of a tab?) "
                            "or remove it")
        yield (where, *_pair(fields, where), None)


def _jsonl(path: Path) -> Iterator[tuple[str, str, str, str | None]]:
    for where, record in json_objects(path):
        if not all(isinstance(record.get(k), str) for k in (SOURCE_KEY, TARGET_KEY)):
            raise DataError(f"{where}: expected an object with string fields '{SOURCE_KEY}' and '{TARGET_KEY}', "
                            f"got {json.dumps(record, ensure_ascii=False)[:80]!r}")
        group = record.get(GROUP_KEY)
        yield (where, *_pair([record[SOURCE_KEY], record[TARGET_KEY]], where),
               str(group) if group not in (None, "") else None)


# A clause ends at a colon, semicolon or full stop (the KJV and the RV1909 punctuate clauses alike).
_CLAUSE_END = re.compile(r"(?<=[:;.?!])\s+")


def clause_pairs(source: str, target: str, max_words: int, max_ratio: float = 2.0) -> list[tuple[str, str]]:
    """A long sentence pair as pairs of clauses, when both sides have the same number of clauses (split after
    ``: ; . ? !``), each clause has at most ``max_words`` words and no clause is more than ``max_ratio`` times as
    long as its counterpart, in words; [] when they do not (the pair cannot be split safely)."""
    sources, targets = _CLAUSE_END.split(source.strip()), _CLAUSE_END.split(target.strip())
    if len(sources) < 2 or len(sources) != len(targets):
        return []
    for s, t in zip(sources, targets, strict=True):
        ns, nt = len(s.split()), len(t.split())
        if max(ns, nt) > max_words or max(ns, nt) > max_ratio * min(ns, nt):
            return []
    return list(zip(sources, targets, strict=True))


def read_pairs(path: Path, *, max_words: int | None = 20, split_long: bool = False,
               splits: dict[str, int] | None = None) -> Iterator[tuple[str, dict]]:
    """ExampleGen reader: ``(file:line, {source, target, group, split})`` per sentence pair of a TSV or JSONL
    file (``.jsonl`` / ``.json`` by extension, anything else is TSV); pairs with more than ``max_words``
    words on a side are skipped (None keeps all) or, with ``split_long``, split into clause pairs where
    ``clause_pairs`` can (each keeps its pair's group, so a chapter's clauses share its split). The split is a
    hash of ``group``, else of the source."""
    splits = splits or {"train": 90, "eval": 5, "test": 5}
    if max_words is not None and (isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1):
        raise ConfigError(f"data.max_words must be a positive integer or null; got {max_words!r}")
    if not isinstance(split_long, bool):
        raise ConfigError(f"data.split_long must be true or false; got {split_long!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"data not found: {path}; fetch the default data with `rnnpipe data fetch translation` or "
                        "point data.path at a TSV (source<TAB>target per line) or JSONL file of sentence pairs")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; data.path must name a TSV or JSONL file of sentence pairs")
    lines = _jsonl(path) if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else _tsv(path)
    for where, source, target, group in lines:
        group = group or source
        split = split_of(group, splits)
        if max_words is None or max(len(source.split()), len(target.split())) <= max_words:
            yield where, {SOURCE_KEY: source, TARGET_KEY: target, GROUP_KEY: group, SPLIT_KEY: split}
        elif split_long:
            for i, (s, t) in enumerate(clause_pairs(source, target, max_words), 1):
                yield f"{where} (clause {i})", {SOURCE_KEY: s, TARGET_KEY: t, GROUP_KEY: group, SPLIT_KEY: split}


def default_path(cache: Path) -> Path:
    return cache / DEFAULT_FILE
