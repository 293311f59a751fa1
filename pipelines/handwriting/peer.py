"""The segment-then-classify peer: the non-recurrent way to read a line of digits.

Connected components of the ink cut the line into glyphs (components that overlap in x, such as the
detached bar of a 5, are merged), left to right; a scikit-learn SVM labels each glyph from its pixels
scaled into a 16x16 box. The SVM trains on glyphs cut the same way from the TRAIN lines, labelled by
their transcript wherever the cut gave exactly one glyph per character: the same training images the
recurrent model saw, no extra labels. Digits that touch become one component, which this peer cannot
split: exactly where reading the whole line with a recurrent model should win.

The line is normalized like the serving graph does (``features.normalize_line``: polarity, contrast,
crop to the ink, HEIGHT rows), here in NumPy and Pillow: the two need not agree to the last bit, since
the peer trains and reads through this one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.svm import SVC

from .data import decode_record_image
from .features import HEIGHT, INK, MARGIN, MIN_RANGE

GLYPH_BOX = 16
MIN_AREA = 6  # ink pixels: a smaller component is a speck, not a glyph
MERGE_OVERLAP = 0.5  # components whose x-ranges overlap by this share of the narrower one are one glyph


def normalize(gray: np.ndarray) -> np.ndarray:
    """uint8 grayscale [h, w] -> ink in 0..1, [HEIGHT, w'] (NumPy twin of features.normalize_line)."""
    g = gray.astype(np.float32) / 255.0
    ink = 1.0 - g if g.mean() > 0.5 else g
    ink = (ink - ink.min()) / max(float(ink.max() - ink.min()), MIN_RANGE)
    rows, cols = np.flatnonzero(ink.max(1) > INK), np.flatnonzero(ink.max(0) > INK)
    if rows.size and cols.size:
        ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    inner = HEIGHT - 2 * MARGIN
    width = max(1, round(ink.shape[1] * inner / ink.shape[0]))
    scaled = np.asarray(Image.fromarray(ink).resize((width, inner), Image.BILINEAR), np.float32)
    return np.pad(np.clip(scaled, 0, 1), MARGIN)


def segment(ink: np.ndarray) -> list[np.ndarray]:
    """The glyphs of a normalized line, left to right, each cropped to its box with other glyphs' ink removed."""
    labels, count = ndimage.label(ink > INK, structure=np.ones((3, 3)))
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), 1):
        if found is not None and np.count_nonzero(labels[found] == index) >= MIN_AREA:
            boxes.append([found[1].start, found[1].stop, {index}])
    boxes.sort(key=lambda b: b[0])
    merged: list[list] = []
    for box in boxes:
        if merged:
            last = merged[-1]
            overlap = min(last[1], box[1]) - max(last[0], box[0])
            if overlap >= MERGE_OVERLAP * min(last[1] - last[0], box[1] - box[0]):
                last[0], last[1], last[2] = min(last[0], box[0]), max(last[1], box[1]), last[2] | box[2]
                continue
        merged.append(box)
    glyphs = []
    for left, right, members in merged:
        keep = np.isin(labels[:, left:right], list(members))
        glyph = np.where(keep, ink[:, left:right], 0.0)
        rows = np.flatnonzero(glyph.max(1) > INK)
        glyphs.append(glyph[rows[0]:rows[-1] + 1])
    return glyphs


def glyph_features(glyph: np.ndarray) -> np.ndarray:
    """A glyph centred in a square, scaled to GLYPH_BOX x GLYPH_BOX, plus its aspect ratio."""
    h, w = glyph.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = glyph
    small = np.asarray(Image.fromarray(square).resize((GLYPH_BOX, GLYPH_BOX), Image.BILINEAR), np.float32)
    return np.append(small.ravel(), w / h)


class SegmentationPeer:
    """Connected components + an SVM on the glyphs; ``fit`` on train records, ``read`` a record's line."""

    def __init__(self, max_glyphs: int = 6000, seed: int = 0) -> None:
        self.max_glyphs, self.seed = max_glyphs, seed
        self.classifier: SVC | None = None
        self.lines_used = 0

    def fit(self, records: list[dict], log: Callable[[str], None] = print) -> SegmentationPeer:
        features, labels = [], []
        for record in records:
            glyphs = segment(normalize(decode_record_image(record["image"])))
            if len(glyphs) != len(record["text"]):
                continue  # the cut does not match the transcript: no label for any glyph of the line
            features += [glyph_features(g) for g in glyphs]
            labels += list(record["text"])
            self.lines_used += 1
            if len(labels) >= self.max_glyphs:
                break
        if len(set(labels)) < 2:
            raise ValueError(f"the segmentation peer found labelled glyphs of {len(set(labels))} class(es) in "
                             f"{len(records)} train lines: too few lines segment cleanly to train it")
        self.classifier = SVC(C=10.0, gamma="scale", random_state=self.seed).fit(np.array(features), labels)
        log(f"segmentation peer: SVM on {len(labels)} glyphs from {self.lines_used} of {len(records)} train lines "
            "(those cut into exactly one glyph per character)")
        return self

    def read(self, records: list[dict]) -> list[str]:
        assert self.classifier is not None, "fit the peer first"
        cut = [segment(normalize(decode_record_image(r["image"]))) for r in records]
        flat = [glyph_features(g) for glyphs in cut for g in glyphs]
        predicted = iter(self.classifier.predict(np.array(flat)) if flat else [])
        return ["".join(str(next(predicted)) for _ in glyphs) for glyphs in cut]
