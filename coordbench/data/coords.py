"""Coordinate frames of the data contract: preset pixels, norm1000 integers, coord tokens.

Pure functions; the frame is in every name (`box_px`, `box_norm1000`). Formulas follow the
upstream data pipeline (upstream_spec §1.4 geometry on resize, §1.5 pixel -> norm1000 -> tokens,
§4.4 norm1000 -> pixel) and are pinned by `tests/oracle/data_pipeline_oracle.jsonl`.
All rounding is Python's `round` (half to even), as upstream.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

COORD_MAX = 999  # coord tokens and norm1000 ints live on 0..999 (upstream §1.2)
TOKEN_RE = re.compile(r"^<\|coord_(\d{1,4})\|>$")  # upstream token regex (§1.2)


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


# --------------------------------------------------------------------------- pixel <-> norm1000


def _fix_min_extent(lo: int, hi: int) -> tuple[int, int]:
    """A collapsed norm1000 interval gets one bin: hi = lo+1, or (998, 999) at the top edge."""
    if hi <= lo:
        if lo < COORD_MAX:
            hi = lo + 1
        else:
            lo, hi = COORD_MAX - 1, COORD_MAX
    return lo, hi


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def box_px_to_norm1000(box_px: Sequence[float], width: int, height: int) -> list[int]:
    """Pixel xyxy -> norm1000 xyxy: `/(W-1)*999`, floor x1/y1, ceil x2/y2, clamp, >= 1 bin.

    Denominators are `max(1, W-1)` / `max(1, H-1)` (upstream §1.5): the last pixel column is 999.
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


def norm1000_to_px(k: float, size: int) -> int:
    """One norm1000 value -> pixel: `clamp(round(round(k) / 999 * (size-1)), 0, size-1)` (§4.4)."""
    denom = max(1.0, float(size) - 1.0)
    frac = float(int(round(float(k)))) / float(COORD_MAX)  # same float ops as upstream, in order
    return _clamp(int(round(frac * denom)), 0, int(size) - 1)


def box_norm1000_to_px(box_norm1000: Sequence[float], width: int, height: int) -> list[int]:
    """Norm1000 xyxy -> pixel xyxy with the evaluator's round trip (upstream §1.5 / §4.4)."""
    x1, y1, x2, y2 = box_norm1000
    return [
        norm1000_to_px(x1, width),
        norm1000_to_px(y1, height),
        norm1000_to_px(x2, width),
        norm1000_to_px(y2, height),
    ]


def box_px_round_clamp(box_px: Sequence[float], width: int, height: int) -> list[int]:
    """Pixel xyxy -> ints in [0, W-1] / [0, H-1]: how upstream reads pixel-frame GT (§4.4)."""
    x1, y1, x2, y2 = (float(v) for v in box_px)
    return [
        _clamp(int(round(x1)), 0, int(width) - 1),
        _clamp(int(round(y1)), 0, int(height) - 1),
        _clamp(int(round(x2)), 0, int(width) - 1),
        _clamp(int(round(y2)), 0, int(height) - 1),
    ]


# --------------------------------------------------------------------------- resize geometry


def _widen_collapsed(lo: int, hi: int, size: int) -> tuple[int, int]:
    """Re-order a flipped interval; widen a collapsed one by 1 px inside [0, size-1] (§1.4)."""
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


# --------------------------------------------------------------------------- object lists


def sort_objects(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by the norm1000 top-left anchor (y1, x1), as upstream's `.norm`/`.coord` files."""
    return sorted(objects, key=lambda o: (float(o["bbox_2d"][1]), float(o["bbox_2d"][0])))


def rescale_objects(
    objects: Sequence[dict[str, Any]], src_wh: tuple[int, int], dst_wh: tuple[int, int]
) -> list[dict[str, Any]]:
    """Objects in source pixels -> preset pixels; key order kept, objects never dropped.

    When the size does not change upstream leaves the geometry untouched (floats stay
    floats, nothing is clamped); we do the same so presets match byte for byte.
    """
    if tuple(src_wh) == tuple(dst_wh):
        return [dict(o) for o in objects]
    return [{**o, "bbox_2d": scale_box_px(o["bbox_2d"], src_wh, dst_wh)} for o in objects]


def objects_to_norm1000(
    objects: Sequence[dict[str, Any]], width: int, height: int
) -> tuple[list[dict[str, Any]], int]:
    """Preset-pixel objects -> sorted norm1000 objects, and how many were dropped as invalid.

    With the >= 1-bin fix nothing is ever dropped; the count exists for parity with upstream's
    `objects_dropped_invalid_bbox` stat.
    """
    out, dropped = [], 0
    for o in objects:
        b = box_px_to_norm1000(o["bbox_2d"], width, height)
        if b[2] > b[0] and b[3] > b[1]:
            out.append({**o, "bbox_2d": b})
        else:  # pragma: no cover - unreachable after _fix_min_extent, kept for parity
            dropped += 1
    return sort_objects(out), dropped


def objects_to_tokens(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Norm1000 objects -> the same objects with `"<|coord_k|>"` strings."""
    return [{**o, "bbox_2d": [coord_token(int(v)) for v in o["bbox_2d"]]} for o in objects]
