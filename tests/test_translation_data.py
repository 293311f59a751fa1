"""Translation data and its parts: the SWORD export and verse alignment (on one real book), the pair
reader's file:line errors, the chapter-level split, the WordPiece vocabulary and tokenizer round trip,
the detokenizer and the word-for-word lexical baseline."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from rnnpipe.errors import ConfigError, DataError
from rnnpipe.pipelines.translation import data

needs_sword = pytest.mark.skipif(shutil.which(data.EXPORTER) is None,
                                 reason="mod2imp missing: `make system-deps` installs libsword-utils")


def test_clean_verse_strips_leftover_markup_and_drop_capitals() -> None:
    assert data.clean_verse("¶ And  [it was] <H2416>good.") == "And it was good."
    assert data.clean_verse("EN el principio crió Dios", drop_capital=True) == "En el principio crió Dios"
    assert data.clean_verse("Y ACONTECIÓ en los días", drop_capital=True) == "Y aconteció en los días"
    assert data.clean_verse("¿Y dijo Jehová", drop_capital=True) == "¿Y dijo Jehová"  # one letter: as it is
    assert data.clean_verse("PABLO, apóstol", drop_capital=True) == "Pablo, apóstol"
    casing = data.word_casing(["Y dijo Abraham", "Y Abraham tomó otra mujer", "Y aconteció"])
    assert data.clean_verse("Y ABRAHAM tomó", drop_capital=True, casing=casing) == "Y Abraham tomó"
    assert data.clean_verse("Y ACONTECIÓ", drop_capital=True, casing=casing) == "Y aconteció"
    assert data.clean_verse("LORD God", drop_capital=False) == "LORD God"


def test_parse_imp_skips_headings_and_keeps_verses() -> None:
    text = ("$$$[ Module Heading ]\n\n$$$Genesis 0:0\n Génesis\n$$$Genesis 1:0\n\n"
            "$$$Genesis 1:1\nIn the beginning.\n$$$1 Kings 2:3\nAnd keep <H1234>the charge\n")
    assert data.parse_imp(text) == {"Genesis 1:1": "In the beginning.", "1 Kings 2:3": "And keep the charge"}


def test_a_psalms_title_is_removed_up_to_its_drop_capital() -> None:
    assert data.without_title("Salmo de David. A TI, oh Jehová, levantaré mi alma.") == \
        "A TI, oh Jehová, levantaré mi alma."
    assert data.without_title("Al Músico principal: Salmo de David. JEHOVÁ es mi pastor") == "JEHOVÁ es mi pastor"
    for unchanged in ("BIENAVENTURADO el varón", "Y ACONTECIÓ en los días", "Oh Dios, oye mi oración",
                      "Aleluya . ALABAD á Jehová"):
        assert data.without_title(unchanged) == unchanged


def test_renumbered_chapters_move_to_the_other_texts_verses_and_drop_merged_ones() -> None:
    spanish = {"Jonah 1:16": "a", "Jonah 2:1": "fish", "Jonah 2:2": "prayed", "Jonah 2:10": "merged", "Ruth 1:1": "r"}
    table = {("Jonah", 2): [(1, 1, 1, 16), (2, 9, 2, -1)]}
    assert data.renumbered(spanish, table) == {"Jonah 1:16": "a", "Jonah 1:17": "fish", "Jonah 2:1": "prayed",
                                               "Ruth 1:1": "r"}
    with pytest.raises(DataError, match="Jonah 1:16: two verses of the target text map to it"):
        data.renumbered(spanish, {("Jonah", 2): [(1, 1, 1, 15)]})


def test_fetch_reuses_the_export_and_removes_the_earlier_version(tmp_path: Path) -> None:
    dest = data.default_path(tmp_path)
    dest.write_text('{"source": "kept"}\n', encoding="utf-8")
    (tmp_path / "kjv-rv1909.jsonl").write_text("v1\n", encoding="utf-8")  # misaligned in eight chapters
    (tmp_path / "pairs.tsv").write_text("a\tb\n", encoding="utf-8")
    assert data.fetch(dest) == dest and dest.read_text(encoding="utf-8") == '{"source": "kept"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [data.DEFAULT_FILE, "pairs.tsv"]


@needs_sword
def test_real_export_aligns_one_book_by_verse(tmp_path: Path) -> None:
    out = data.export_bible(tmp_path / "ruth.jsonl", books=["Ruth", "Jonah"])
    everything = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    jonah = {p["ref"]: p for p in everything if p["group"].startswith("Jonah")}
    # The RV1909 numbers Jonah 2 as the Hebrew Bible does (its 2:1 is the KJV's 1:17): paired by content.
    assert jonah["Jonah 1:17"]["target"].startswith("Mas Jehová había prevenido un gran pez")
    assert jonah["Jonah 2:1"]["target"].startswith("Y oró Jonás desde el vientre del pez")
    assert "Jonah 2:10" not in jonah  # the Spanish verse holding the KJV's 2:9 and 2:10
    pairs = [p for p in everything if p["group"].startswith("Ruth")]
    assert len(pairs) == 85  # Ruth has 85 verses in the KJV versification both modules use
    first = pairs[0]
    assert first["ref"] == "Ruth 1:1" and first["group"] == "Ruth 1"
    assert first["source"].startswith("Now it came to pass in the days when the judges ruled")
    assert first["target"].startswith("Y aconteció en los días que gobernaban los jueces")
    assert all("<" not in p["source"] + p["target"] and "¶" not in p["source"] for p in pairs)
    assert {p["group"] for p in pairs} == {f"Ruth {c}" for c in range(1, 5)}
    # Chapters, not verses, are split: every chapter's verses land in one split.
    records = [r for _, r in data.read_pairs(out, max_words=None)]
    by_group: dict[str, set] = {}
    for r in records:
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(splits) == 1 for splits in by_group.values())


def test_missing_exporter_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="install the Debian package libsword-utils"):
        data.export_module(data.SOURCE_MODULE)


@needs_sword
def test_missing_module_names_its_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(data.MODULES, "noSuchModule", "sword-text-nothing")
    with pytest.raises(DataError, match="install the Debian package sword-text-nothing"):
        data.export_module("noSuchModule")


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("content", "line", "message"), [
    (b"Hello.\tHola.\nGood night.\n", 2, "expected 2 tab-separated fields .* got 1"),
    (b"Hello.\tHola.\nA\tB\tC\n", 2, "expected 2 tab-separated fields .* got 3"),
    (b"Hello.\tHola.\n\n  \t Adios.\n", 3, "the source side is empty"),
    (b"Hello.\tHola.\nYes.\t \n", 2, "the target side is empty"),
    (b"Hello.\tHola.\nBad \xff byte.\tMal.\n", 2, "not valid UTF-8 at byte offset 17"),
])
def test_malformed_tsv_names_file_and_line(tmp_path: Path, content: bytes, line: int, message: str) -> None:
    path = _write(tmp_path, "pairs.tsv", content)
    with pytest.raises(DataError, match=rf"{path}:{line}: {message}"):
        list(data.read_pairs(path))


def test_jsonl_pairs_split_by_group_and_cut_by_length(tmp_path: Path) -> None:
    rows = [{"source": f"word {i}", "target": f"palabra {i}", "group": f"g{i % 7}"} for i in range(200)]
    rows.append({"source": " ".join(["long"] * 21), "target": "largo", "group": "g0"})
    path = _write(tmp_path, "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    records = [r for _, r in data.read_pairs(path, max_words=20)]
    assert len(records) == 200  # the 21-word source is cut
    assert {r["group"]: r["split"] for r in records} == {r["group"]: r["split"] for r in records[:7]}
    assert len({r["split"] for r in records}) > 1
    assert len(list(data.read_pairs(path, max_words=None))) == 201
    bad = _write(tmp_path, "bad.jsonl", b'{"source": "a", "target": "b"}\n{"source": "a"}\n')
    with pytest.raises(DataError, match=rf"{bad}:2: expected an object with string fields"):
        list(data.read_pairs(bad))
    with pytest.raises(ConfigError, match="data.max_words"):
        list(data.read_pairs(path, max_words=0))


def test_a_long_pair_is_split_into_its_clauses_only_when_they_match() -> None:
    source = "And God saw the light, that it was good: and God divided the light from the darkness."
    target = "Y vió Dios que la luz era buena: y apartó Dios la luz de las tinieblas."
    assert data.clause_pairs(source, target, max_words=10) == [
        ("And God saw the light, that it was good:", "Y vió Dios que la luz era buena:"),
        ("and God divided the light from the darkness.", "y apartó Dios la luz de las tinieblas."),
    ]
    assert data.clause_pairs(source, target, max_words=8) == []  # a clause of 9 words is still too long
    assert data.clause_pairs(source, target.replace(":", ","), max_words=10) == []  # 2 clauses against 1
    # As many clauses, but one side's first is more than twice as long as the other's: not each other's.
    assert data.clause_pairs("Go: and he went his way unto the city of David.", "Vete y se fué: a la ciudad.",
                             max_words=10) == []


def test_split_long_keeps_the_clauses_of_a_long_pair_in_its_group(tmp_path: Path) -> None:
    rows = [{"source": "One two: three four.", "target": "Uno dos: tres cuatro.", "group": "Genesis 1"},
            {"source": "Short.", "target": "Corto.", "group": "Genesis 2"},
            {"source": "One two three four five.", "target": "Uno dos tres cuatro cinco.", "group": "Genesis 3"}]
    path = _write(tmp_path, "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert [r["source"] for _, r in data.read_pairs(path, max_words=3)] == ["Short."]
    split = list(data.read_pairs(path, max_words=3, split_long=True))
    assert [(where.rsplit(":", 1)[-1], r["source"], r["target"], r["group"]) for where, r in split] == [
        ("1 (clause 1)", "One two:", "Uno dos:", "Genesis 1"),
        ("1 (clause 2)", "three four.", "tres cuatro.", "Genesis 1"),
        ("2", "Short.", "Corto.", "Genesis 2"),  # the 5-word pair has one clause: skipped as before
    ]
    genesis_1 = data.split_of("Genesis 1", {"train": 90, "eval": 5, "test": 5})
    assert split[0][1]["split"] == split[1][1]["split"] == genesis_1
    with pytest.raises(ConfigError, match="data.split_long must be true or false; got 'yes'"):
        list(data.read_pairs(path, split_long="yes"))


def test_wordpiece_vocabulary_round_trips_through_the_tokenizer(tmp_path: Path) -> None:
    import tensorflow as tf

    from rnnpipe.pipelines.translation.features import (
        RESERVED,
        UNK_ID,
        learn_vocabulary,
        pre_tokenize,
        tokenize,
        wordpiece_tokenizer,
    )
    from rnnpipe.pipelines.translation.model import detokenize

    sentences = ["Y dijo Dios: Sea la luz: y fué la luz.", "¿Quién eres tú, Señor?", "Y vió Dios que la luz era buena."]
    counts = Counter(w.decode() for w in pre_tokenize(tf.constant(sentences * 3)).flat_values.numpy())
    pieces = learn_vocabulary(dict(counts), vocab_size=60, min_count=2)
    assert pieces[:4] == list(RESERVED) and len(set(pieces)) == len(pieces)
    path = tmp_path / "vocab.txt"
    path.write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    ids = tokenize(wordpiece_tokenizer(str(path)), tf.constant(sentences + ["luz ∆"]))
    assert UNK_ID not in ids[0].numpy().tolist()  # every character of the training words is a piece
    assert ids[3].numpy().tolist()[-1] == UNK_ID  # an unseen symbol is one unknown piece
    text = detokenize(tf.gather(tf.constant(pieces), ids[:3])).numpy()
    assert [t.decode() for t in text] == sentences


def test_lexical_baseline_translates_word_for_word_by_dice() -> None:
    from rnnpipe.pipelines.translation.metrics import LexicalTranslator, scores

    pairs = [("the light", "la luz"), ("the day", "el día"), ("the light was good", "la luz era buena"),
             ("good day", "buen día"), ("light", "luz"), ("the day was good", "el día era bueno")]
    lexical = LexicalTranslator(pairs, min_count=2)
    translated = lexical.translate("The light, the day.").split()
    assert translated[1] == "luz," and translated[3] == "día." and translated[0] in ("la", "el")
    assert lexical.translate("unknown") == "unknown"
    perfect, copied = scores(["la luz"], ["la luz"]), scores(["the light"], ["la luz"])
    assert perfect["chrf"] == pytest.approx(100.0) and copied["chrf"] < 50


def test_ibm1_lexicon_file_keeps_the_likeliest_targets_and_reads_back(tmp_path: Path) -> None:
    import numpy as np

    from rnnpipe.pipelines.translation.features import LEXICON_KEEP, LearnIbm1Lexicon, read_lexicon

    table = np.zeros((4, LEXICON_KEEP + 8))
    table[0, 5] = 1.0  # "no source word": not written
    table[2, 4:] = np.linspace(1.0, 2.0, LEXICON_KEEP + 4)
    table[2] /= table[2].sum()
    analyzer = LearnIbm1Lexicon("lexicon.tsv", iterations=1)
    analyzer.base_temp_dir = str(tmp_path)
    read = read_lexicon(analyzer._write(table).item().decode(), 3, LEXICON_KEEP + 6)
    assert read.shape == (3, LEXICON_KEEP + 6) and read[0].sum() == 0 and read[1].sum() == 0
    kept = np.nonzero(read[2])[0]
    assert len(kept) == LEXICON_KEEP - 2 and kept.min() == 8  # the 20 largest are ids 8..27; 26 and 27 are cut
    np.testing.assert_allclose(read[2, kept], table[2, kept], rtol=1e-5)


@pytest.mark.parametrize("top_k", [0, 2.5, True])
def test_a_bad_lexicon_top_k_names_its_config_key(top_k: object) -> None:
    from rnnpipe.pipelines.translation.model import build_model

    with pytest.raises(ConfigError, match=rf"model.lexicon_top_k must be a positive integer; got {top_k!r}"):
        build_model({"lexical_bias": True, "lexicon_top_k": top_k}, tft_output=None)


@pytest.mark.parametrize(("key", "value"), [("coverage_penalty", -0.1), ("length_penalty", "long"),
                                            ("coverage_penalty", True), ("length_penalty", False),
                                            ("coverage_penalty", float("inf"))])
def test_a_bad_decoding_penalty_names_its_config_key_before_training(key: str, value: object) -> None:
    from rnnpipe.pipelines.translation.model import build_model

    with pytest.raises(ConfigError, match=rf"model.{key} must be a finite number >= 0; got {value!r}"):
        build_model({key: value}, tft_output=None)
