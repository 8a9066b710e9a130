"""Coordinate frames and IoU: the only copy of this math in coordbench.

Frames: preset pixels (ints in [0, W-1]), norm1000 (ints on the 0..999 lattice, written as coord
tokens `<|coord_k|>` on the token surface) and rel1000 (Qwen3-VL's 0..1000 relative to the full
side). The frame is in every name (`box_px`, `box_norm1000`). Formulas follow the upstream data
pipeline and evaluator ([UP-RECORD-SCHEMA] tokens, [UP-RESIZE] geometry on resize, [UP-NORM1000]
pixel ->
norm1000, [UP-DENORM] norm1000 -> pixel) and are pinned by `tests/oracle/*.jsonl`. All rounding is
Python's `round` (half to even), as upstream.

IoU is on xyxy boxes with continuous areas (no +1), as pycocotools' `bbIou`.

Pure functions on stdlib and numpy only, in the lowest layer but types/errors: every other
package may import this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

COORD_MAX = 999  # coord tokens and norm1000 ints live on 0..999 ([UP-COORD-TOKENS] `MAX_BIN`)
REL1000_MAX = 1000  # rel1000 values are 0..1000 of the full side (Qwen3-VL)
# upstream `COORD_TOKEN_PATTERN` [UP-RECORD-SCHEMA]; `$` also matches before a final "\n", as
# upstream's does
TOKEN_PATTERN = r"<\|coord_(\d{1,4})\|>"  # upstream token regex; k may have up to 4 digits
TOKEN_RE = re.compile(f"^{TOKEN_PATTERN}$")


# --------------------------------------------------------------------------- tokens


def coord_token(k: int) -> str:
    """`k` -> `"<|coord_k|>"`; `k` must be an int in 0..999."""
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= COORD_MAX:
        raise ValueError(f"expected a norm1000 int in [0, {COORD_MAX}] but got {k!r}")
    return f"<|coord_{k}|>"


def parse_coord_token(value: Any) -> int | None:
    """`"<|coord_k|>"` -> k, or None when `value` is not a token with k in 0..999."""
    if not isinstance(value, str):
        return None
    m = TOKEN_RE.match(value)
    if m is None:
        return None
    k = int(m.group(1))
    return k if k <= COORD_MAX else None


def is_coord_token(value: Any) -> bool:
    """True for strings shaped like a coord token (even with k > 999, which are invalid)."""
    return isinstance(value, str) and TOKEN_RE.match(value) is not None


# --------------------------------------------------------------------------- to pixels


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def round_clamp_px(v: float, size: int) -> int:
    """A pixel coordinate -> int in [0, size-1]: `clamp(round(v), 0, size-1)`.

    Non-finite `v` raises (OverflowError / ValueError from `round`); callers that must not raise
    check `math.isfinite` first.
    """
    return _clamp(int(round(v)), 0, int(size) - 1)


def norm1000_to_px_float(k: float, size: int) -> float:
    """One norm1000 value -> unrounded pixel: `round(k) / 999 * (size-1)` [UP-DENORM].

    The denominator is `max(1, size-1)`: norm1000 999 is the last pixel column. The float
    operations run in upstream's order, so `.5` ties round to the same side.
    """
    denom = max(1.0, float(size) - 1.0)
    return float(int(round(float(k)))) / float(COORD_MAX) * denom


def norm1000_to_px(k: float, size: int) -> int:
    """One norm1000 value -> pixel [UP-DENORM].

    `clamp(round(round(k) / 999 * (size-1)), 0, size-1)`.
    """
    return round_clamp_px(norm1000_to_px_float(k, size), size)


def rel1000_to_px_float(v: float, size: int) -> float:
    """One rel1000 value -> unrounded pixel: `v / 1000 * size` (Qwen3-VL, full side)."""
    return float(v) / float(REL1000_MAX) * float(size)


def box_norm1000_to_px(box_norm1000: Sequence[float], width: int, height: int) -> list[int]:
    """Norm1000 xyxy -> pixel xyxy with the evaluator's round trip ([UP-NORM1000] / [UP-DENORM])."""
    x1, y1, x2, y2 = box_norm1000
    return [
        norm1000_to_px(x1, width),
        norm1000_to_px(y1, height),
        norm1000_to_px(x2, width),
        norm1000_to_px(y2, height),
    ]


def box_px_round_clamp(box_px: Sequence[float], width: int, height: int) -> list[int]:
    """Pixel xyxy -> ints in [0, W-1] / [0, H-1]: how upstream reads pixel-frame GT [UP-DENORM]."""
    x1, y1, x2, y2 = (float(v) for v in box_px)
    return [
        round_clamp_px(x1, width),
        round_clamp_px(y1, height),
        round_clamp_px(x2, width),
        round_clamp_px(y2, height),
    ]


# --------------------------------------------------------------------------- pixel -> norm1000


def _fix_min_extent(lo: int, hi: int) -> tuple[int, int]:
    """A collapsed norm1000 interval gets one bin: hi = lo+1, or (998, 999) at the top edge."""
    if hi <= lo:
        if lo < COORD_MAX:
            hi = lo + 1
        else:
            lo, hi = COORD_MAX - 1, COORD_MAX
    return lo, hi


def box_px_to_norm1000(box_px: Sequence[float], width: int, height: int) -> list[int]:
    """Pixel xyxy -> norm1000 xyxy: `/(W-1)*999`, floor x1/y1, ceil x2/y2, clamp, >= 1 bin.

    Denominators are `max(1, W-1)` / `max(1, H-1)` [UP-NORM1000]: the last pixel column is 999.
    Floor/ceil keep the box from shrinking, so the round trip can grow it by up to ~1 bin a side.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    dx, dy = max(1.0, float(width) - 1.0), max(1.0, float(height) - 1.0)
    x1, y1, x2, y2 = (float(v) for v in box_px)
    nx1 = _clamp(math.floor(x1 / dx * COORD_MAX), 0, COORD_MAX)
    ny1 = _clamp(math.floor(y1 / dy * COORD_MAX), 0, COORD_MAX)
    nx2 = _clamp(math.ceil(x2 / dx * COORD_MAX), 0, COORD_MAX)
    ny2 = _clamp(math.ceil(y2 / dy * COORD_MAX), 0, COORD_MAX)
    nx1, nx2 = _fix_min_extent(nx1, nx2)
    ny1, ny2 = _fix_min_extent(ny1, ny2)
    return [nx1, ny1, nx2, ny2]


# --------------------------------------------------------------------------- resize geometry


def _widen_collapsed(lo: int, hi: int, size: int) -> tuple[int, int]:
    """Re-order a flipped interval; widen a collapsed one by 1 px inside [0, size-1] [UP-RESIZE]."""
    if hi < lo:
        lo, hi = hi, lo
    if hi <= lo:
        if hi < size - 1:
            hi = min(size - 1, lo + 1)
        elif lo > 0:
            lo = max(0, hi - 1)
    return lo, hi


def scale_box_px(
    box_px: Sequence[float], src_wh: tuple[int, int], dst_wh: tuple[int, int]
) -> list[int]:
    """A source-pixel box -> preset-pixel ints: `v * (W'/W)`, round, clamp, reorder, widen.

    `sx = W'/W` is computed first and then multiplied, exactly as upstream, so `.5` ties
    land on the same side.
    """
    (w, h), (nw, nh) = src_wh, dst_wh
    sx, sy = float(nw) / float(w), float(nh) / float(h)
    x1, y1, x2, y2 = box_px_round_clamp(
        [
            float(box_px[0]) * sx,
            float(box_px[1]) * sy,
            float(box_px[2]) * sx,
            float(box_px[3]) * sy,
        ],
        nw,
        nh,
    )
    x1, x2 = _widen_collapsed(x1, x2, nw)
    y1, y2 = _widen_collapsed(y1, y2, nh)
    return [x1, y1, x2, y2]


# --------------------------------------------------------------------------- IoU


def _iou(
    lo_a: np.ndarray,
    hi_a: np.ndarray,
    area_a: np.ndarray,
    lo_b: np.ndarray,
    hi_b: np.ndarray,
    area_b: np.ndarray,
) -> np.ndarray:
    """IoU of boxes given as corners `lo = (x1, y1)`, `hi = (x2, y2)` (last axis) and areas.

    Broadcasts like numpy. Intersection sides are clipped at 0; the IoU is 0 unless both the
    intersection and the union are positive. For boxes with x2 > x1 and y2 > y1 this is
    pycocotools' `bbIou` (non-crowd) operation for operation: `i / (area_a + area_b - i)`.
    """
    side = np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0.0, None)
    inter = side[..., 0] * side[..., 1]
    union = area_a + area_b - inter
    return np.where((inter > 0) & (union > 0), inter / np.where(union > 0, union, 1.0), 0.0)


def iou_matrix(a_xyxy: Any, b_xyxy: Any) -> np.ndarray:
    """(A, B) float64 IoU of every xyxy box in `a_xyxy` with every one in `b_xyxy`.

    Areas are `(x2-x1) * (y2-y1)`. A reversed or zero-area box has IoU 0 with everything.
    `iou_pairs_xywh` is its paired-rows twin for the COCO matcher.
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)[None, :, :]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return _iou(a[..., :2], a[..., 2:], area_a, b[..., :2], b[..., 2:], area_b)


def iou_pairs_xyxy(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """(N,) IoU of paired rows of xyxy boxes: `iou_matrix`'s value for each (a[i], b[i])."""
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return _iou(a[:, :2], a[:, 2:], area_a, b[:, :2], b[:, 2:], area_b)


def iou_pairs_xywh(
    a_xywh: np.ndarray, b_xywh: np.ndarray, b_crowd: np.ndarray | None = None
) -> np.ndarray:
    """(N,) IoU of paired rows of xywh boxes, bit-identical to pycocotools `bbIou` (non-crowd).

    The COCO matcher's variant of `iou_matrix`: it pairs ragged (detection, GT) rows, and its
    boxes are COCO xywh floats whose areas pycocotools takes as `w * h`. Going through xyxy would
    compute `(x + w) - x`, which is not always `w` in floating point, so the 1e-12 pycocotools
    parity would break; here `x2 = x + w` is used only for the intersection, as `bbIou` does.
    """
    a = np.asarray(a_xywh, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xywh, dtype=np.float64).reshape(-1, 4)
    lo_a, lo_b = a[:, :2], b[:, :2]
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    if b_crowd is None or not np.any(b_crowd):
        return _iou(lo_a, lo_a + a[:, 2:], area_a, lo_b, lo_b + b[:, 2:], area_b)
    # a crowd region b: pycocotools divides by the detection's area only (union = area_a)
    side = np.clip(np.minimum(lo_a + a[:, 2:], lo_b + b[:, 2:]) - np.maximum(lo_a, lo_b), 0.0, None)
    inter = side[:, 0] * side[:, 1]
    union = np.where(b_crowd, area_a, area_a + area_b - inter)
    return np.where((inter > 0) & (union > 0), inter / np.where(union > 0, union, 1.0), 0.0)
