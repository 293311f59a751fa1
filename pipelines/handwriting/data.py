"""Handwriting data: a folder of line images and a manifest -> ``{image, text, path, ...}`` records.

The manifest is a ``.jsonl`` (one object per line) or ``.csv`` (a header) file with ``path`` (relative to
the manifest's folder, or absolute) and ``text`` (the transcript; ``transcript`` is accepted too), and
optionally ``split`` (train / eval / test; else a stable hash of the path decides), ``spacing`` and
``sources`` (the composed default lines carry them: the Evaluator slices by spacing, and tests check
that no source image is shared between splits). Images may have any format Pillow reads, any width and
height, dark ink on light paper or the reverse.

Every image is checked before anything is written, and a bad one stops the run naming its file and the
manifest line: a missing file, a file that is not a readable image (corrupt, truncated, not an image),
an empty image (no contrast: nothing is written on it), or a transcript that is empty or has characters
outside ``data.alphabet``. Records carry the image as grayscale PNG (a grayscale PNG file as it is, any
other image converted) in base64url text, since record fields are UTF-8 text: the serving signature takes
PNG bytes and that text alike.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rnnpipe.components import example_gen
from rnnpipe.errors import ConfigError, DataError

SPLITS = ("train", "eval", "test")
TEXT_FIELDS = ("text", "transcript")
MIN_CONTRAST = 24  # gray levels (of 255) between the darkest and the lightest pixel, below which an image is blank
MAX_PIXELS = 40_000_000  # a line image larger than this is a mistake (a page? a photo?), not a line


def manifest_rows(manifest: Path) -> Iterator[tuple[str, dict]]:
    """(file:line, row) per non-empty row of a .jsonl or .csv manifest."""
    if not manifest.exists():
        raise DataError(f"manifest not found: {manifest}; point data.path at a .csv or .jsonl manifest of "
                        "(path, text) rows, or leave it null for the composed digit lines")
    if manifest.is_dir():
        raise DataError(f"{manifest}: is a folder; data.path must name the manifest (.csv or .jsonl) inside it")
    yield from example_gen.manifest_rows(manifest)


def load_line_image(path: Path, where: str) -> bytes:
    """The image at ``path`` as grayscale PNG bytes (a grayscale PNG as it is, anything else converted); a
    DataError naming it when it is missing, unreadable or blank."""
    if not path.is_file():
        raise DataError(f"{path}: image not found (listed at {where}); fix the path in the manifest or add the file")
    raw = path.read_bytes()
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DataError(f"{path}: {img.width}x{img.height} pixels is no text line (listed at {where}); "
                                "crop it to the line")
            as_is = img.format == "PNG" and img.mode == "L"
            gray = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e}) (listed at {where}); replace it "
                        "with a PNG/JPEG of the line or remove its row from the manifest") from None
    if gray.size == 0 or int(gray.max()) - int(gray.min()) < MIN_CONTRAST:
        level = int(gray.max()) if gray.size else 0
        raise DataError(f"{path}: blank image (every pixel within {MIN_CONTRAST} gray levels of {level}: nothing is "
                        f"written on it) (listed at {where}); remove its row from the manifest")
    if as_is:
        return raw
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def png_base64(png: bytes) -> str:
    """PNG bytes as base64url text: what a record carries, and what serving also accepts."""
    return base64.urlsafe_b64encode(png).decode("ascii")


def decode_record_image(value: str | bytes) -> np.ndarray:
    """A record's ``image`` (base64url PNG text, or PNG bytes) -> uint8 grayscale [height, width]."""
    raw = value if isinstance(value, bytes) else value.encode("ascii")
    if not raw.startswith(b"\x89PNG"):
        raw = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    with Image.open(io.BytesIO(raw)) as img:
        return np.asarray(img.convert("L"))


def check_transcript(text: object, alphabet: str, where: str, path: Path) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: the transcript of {path} is empty or missing; give every image its text")
    outside = sorted({c for c in text if c not in alphabet})
    if outside:
        raise DataError(f"{where}: the transcript {text!r} of {path} has character(s) {''.join(outside)!r} outside "
                        f"the alphabet {alphabet!r}; fix the transcript or add them to data.alphabet")
    return text


def read_manifest(path: Path, *, alphabet: str = "0123456789",
                  splits: dict[str, int] | None = None) -> Iterator[tuple[str, dict]]:
    """ExampleGen reader: one record per manifest row: ``image`` (base64url PNG), ``text``, ``path``,
    ``split``, and ``spacing`` / ``sources`` when the manifest has them."""
    if not isinstance(alphabet, str) or not alphabet:
        raise ConfigError(f"data.alphabet must be a non-empty string of the characters transcripts use; got "
                          f"{alphabet!r}")
    weights = splits or {"train": 80, "eval": 10, "test": 10}
    manifest = Path(path)
    count = 0
    for where, row in manifest_rows(manifest):
        if not row.get("path"):
            raise DataError(f"{where}: no 'path' (the image file, relative to {manifest.parent})")
        image_path = Path(str(row["path"])).expanduser()
        image_path = image_path if image_path.is_absolute() else manifest.parent / image_path
        text = next((row[k] for k in TEXT_FIELDS if k in row), None)
        text = check_transcript(text, alphabet, where, image_path)
        split = row.get("split") or example_gen.split_of(str(row["path"]), weights)
        if split not in weights:
            raise DataError(f"{where}: split {split!r} of {image_path} is not one of {list(weights)}")
        record = {"image": png_base64(load_line_image(image_path, where)), "text": text, "path": str(row["path"]),
                  "split": split}
        record.update({k: str(row[k]) for k in ("spacing", "sources") if row.get(k)})
        count += 1
        yield where, record
    if count == 0:
        raise DataError(f"{manifest}: no rows; list one (path, text) row per line image")
