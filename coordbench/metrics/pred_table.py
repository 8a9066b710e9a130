"""Every prediction of an evaluation as one set of columns [ARCH-EVAL-SPEED].

COCO, F1, calibration and diagnostics read these arrays instead of a dict per prediction: the
per-box Python work of a 200 k-detection file is what made `eval` as slow as pycocotools.
Rows are in record order, then prediction order (the order COCOeval breaks score ties by).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from coordbench.metrics.ingest import EvalImage
from coordbench.metrics.semantic import normalize_desc


def codes(values: list[str]) -> tuple[list[str], np.ndarray]:
    """(distinct values in first-appearance order, (n,) int64 position of each value)."""
    uniq = list(dict.fromkeys(values))
    pos = {v: i for i, v in enumerate(uniq)}
    return uniq, np.fromiter(map(pos.__getitem__, values), np.int64, len(values))


@dataclass
class PredTable:
    img: np.ndarray  # (N,) position of the prediction's image in the evaluated images
    box: np.ndarray  # (N, 4) xyxy, int64 for pixel ints (a polygon's extent)
    desc: list[str]  # stripped descs, as given
    score: list[Any]  # raw scores (None when absent)
    poly: np.ndarray  # (N,) bool
    bounds: np.ndarray  # (n_images + 1,) row offsets: image i owns rows bounds[i]:bounds[i+1]
    _norm: tuple[list[str], np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.desc)

    def local_index(self, rows: np.ndarray) -> np.ndarray:
        """Index of each row within its image's predictions."""
        return rows - self.bounds[self.img[rows]]

    def norm_codes(self) -> tuple[list[str], np.ndarray]:
        """(distinct normalised descs, (N,) code of each row's normalised desc), computed once."""
        if self._norm is None:
            raw, raw_code = codes(self.desc)
            norm, norm_of_raw = codes([normalize_desc(d) for d in raw])
            self._norm = norm, norm_of_raw[raw_code] if len(raw_code) else raw_code
        return self._norm


def pred_table(images: list[EvalImage]) -> PredTable:
    counts = np.fromiter((im.n_preds for im in images), np.int64, len(images))
    boxes = [im.pred_boxes() for im in images if im.n_preds]
    box = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int64)
    poly = np.zeros(len(box), bool)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for i, im in enumerate(images):
        if im.has_poly():
            poly[bounds[i] : bounds[i + 1]] = [p["type"] == "poly" for p in im.preds]
    return PredTable(
        img=np.repeat(np.arange(len(images)), counts),
        box=box,
        desc=list(chain.from_iterable(im.pred_desc_list() for im in images)),
        score=list(chain.from_iterable(im.pred_score_list() for im in images)),
        poly=poly,
        bounds=bounds,
    )
