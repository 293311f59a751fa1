"""Handwriting parts without the pipeline: composing by source image, the manifest reader and its errors,
the serving graph's image normalization (any polarity, size and encoding), the segmentation peer and
the line metrics."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rnnpipe.errors import ConfigError, DataError
from rnnpipe.pipelines.handwriting.compose import MANIFEST, compose, source_split
from rnnpipe.pipelines.handwriting.data import decode_record_image, read_manifest
from rnnpipe.pipelines.handwriting.features import HEIGHT, decode_lines
from rnnpipe.pipelines.handwriting.metrics import line_metrics
from rnnpipe.pipelines.handwriting.peer import normalize, segment


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compose(tmp_path_factory.mktemp("lines") / "composed", {"train": 40, "eval": 5, "test": 20}, seed=3)


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST).open(encoding="utf-8")]


def test_composed_lines_use_only_their_splits_source_images(lines: Path) -> None:
    manifest = rows(lines)
    for row in manifest:
        assert {source_split(s) for s in row["sources"].split()} == {row["split"]}
        assert len(row["text"]) == len(row["sources"].split()) and 3 <= len(row["text"]) <= 8
        assert Image.open(lines / row["path"]).mode == "L"
    assert {r["spacing"] for r in manifest} == {"touching", "separated"}
    # Composing again is a no-op: the folder is complete or absent.
    assert compose(lines, {"train": 1, "eval": 1, "test": 1}) == lines and rows(lines) == manifest


def test_reader_reads_csv_and_jsonl_manifests_with_relative_paths(lines: Path, tmp_path: Path) -> None:
    manifest = rows(lines)[:4]
    csv = tmp_path / "lines.csv"
    csv.write_text("path,transcript\n" + "".join(f"{lines / r['path']},{r['text']}\n" for r in manifest))
    records = [r for _, r in read_manifest(csv)]
    assert [r["text"] for r in records] == [r["text"] for r in manifest]
    assert all(r["split"] in ("train", "eval", "test") for r in records)  # by a hash of the path
    # The record's PNG holds exactly the file's pixels.
    np.testing.assert_array_equal(decode_record_image(records[0]["image"]),
                                  np.asarray(Image.open(lines / manifest[0]["path"])))
    where, first = next(read_manifest(lines / MANIFEST))
    assert where == f"{lines / MANIFEST}:1" and first["sources"] == manifest[0]["sources"]


def _write(folder: Path, name: str, image: Image.Image, text: str = "123") -> Path:
    folder.mkdir(exist_ok=True)
    image.save(folder / name)
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"path": name, "text": text}) + "\n")
    return manifest


def test_a_colour_jpeg_is_converted_and_a_missing_file_is_named(lines: Path, tmp_path: Path) -> None:
    gray = Image.open(lines / rows(lines)[0]["path"])
    manifest = _write(tmp_path / "jpeg", "line.jpg", gray.convert("RGB"))
    record = next(read_manifest(manifest))[1]
    assert base64.urlsafe_b64decode(record["image"]).startswith(b"\x89PNG")
    manifest.write_text(json.dumps({"path": "gone.png", "text": "1"}) + "\n")
    with pytest.raises(DataError, match=rf"{tmp_path / 'jpeg' / 'gone.png'}: image not found \(listed at {manifest}:1"):
        list(read_manifest(manifest))


@pytest.mark.parametrize("text, message", [("", "is empty or missing"), ("12 3", r"character\(s\) ' ' outside")])
def test_bad_transcripts_name_the_manifest_line_and_the_image(lines: Path, tmp_path: Path, text: str,
                                                              message: str) -> None:
    manifest = _write(tmp_path / "t", "line.png", Image.open(lines / rows(lines)[0]["path"]), text)
    with pytest.raises(DataError, match=message) as e:
        list(read_manifest(manifest))
    assert f"{manifest}:1" in str(e.value) and str(tmp_path / "t" / "line.png") in str(e.value)


def test_normalization_ignores_polarity_size_and_encoding(lines: Path) -> None:
    image = np.asarray(Image.open(lines / rows(lines)[0]["path"]))
    variants = [image, 255 - image]  # dark ink on light paper, and light ink on dark
    encoded = []
    for array in variants:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    encoded.append(base64.urlsafe_b64encode(encoded[0]))  # the records' base64url text
    big = Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3), Image.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    encoded.append(buffer.getvalue())
    out = decode_lines(encoded)
    widths = (out.row_lengths().numpy() // HEIGHT).tolist()
    assert widths[0] == widths[1] == widths[2] and abs(widths[3] - widths[0]) <= 0.03 * widths[0]
    first = out[0].numpy().reshape(-1, HEIGHT)
    np.testing.assert_allclose(out[1].numpy().reshape(-1, HEIGHT), first, atol=0.1)
    np.testing.assert_array_equal(out[2].numpy(), out[0].numpy())
    assert first[:, 0].max() == 0 and first.max() == pytest.approx(1.0, abs=0.05)  # blank margin, ink at 1


def test_segmentation_cuts_separated_lines_into_one_glyph_per_digit(lines: Path) -> None:
    separated = [r for r in rows(lines) if r["spacing"] == "separated"]
    cut = [len(segment(normalize(np.asarray(Image.open(lines / r["path"]))))) for r in separated]
    right = np.mean([n == len(r["text"]) for n, r in zip(cut, separated, strict=True)])
    assert right > 0.5, list(zip(cut, [r["text"] for r in separated], strict=True))


def test_line_metrics_count_character_edits_and_whole_lines() -> None:
    out = line_metrics(["1234", "567"], ["1234", "5x67"])
    assert out["cer"] == pytest.approx(1 / 7) and out["line_accuracy"] == 0.5 and out["chars"] == 7
    assert line_metrics(["12"], [""])["cer"] == 1.0


def test_out_of_range_composition_settings_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.compose.lines"):
        compose(tmp_path / "x", {"train": 0, "eval": 1, "test": 1})
    with pytest.raises(ConfigError, match="min_digits <= max_digits"):
        compose(tmp_path / "x", {"train": 1, "eval": 1, "test": 1}, min_digits=5, max_digits=3)
    assert not (tmp_path / "x").exists()
