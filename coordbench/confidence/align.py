"""Rebuild `pred` from `raw_output_json` to align a record with its token trace ([UP-CONF-SCORE]
step 2-3).

Upstream's confidence post-op re-standardizes every raw object under the record's
pred_coord_mode candidates and requires the result to equal the emitted `pred` exactly; only
then are the boxes' 4 bins (tokens decoded, numbers rounded) trusted for span matching.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from coordbench.geometry import COORD_MAX, is_coord_token
from coordbench.parse.standardize import (
    ObjectError,
    decode_coord,
    flatten_points,
    geometry,
    standardize,
)


def alignment_modes(record: Mapping) -> list[str]:
    """pred_coord_modes upstream tries to rebuild `pred` (+ rel1000, coordbench's surface)."""
    primary = str(record.get("pred_coord_mode") or "").strip().lower()
    if primary not in ("auto", "norm1000", "pixel", "rel1000"):
        hint = str(record.get("coord_mode") or "").strip().lower()
        primary = hint if hint in ("norm1000", "pixel") else "auto"
    modes = [primary]
    raw = record.get("raw_output_json")
    objects = raw.get("objects") if isinstance(raw, Mapping) else None
    numeric = any(
        isinstance(o, Mapping)
        and (flat := flatten_points(raw_points(o))) is not None
        and not any(is_coord_token(v) for v in flat)
        for o in (objects if isinstance(objects, list) else [])
    )
    if record_has_coord_tokens(record) or numeric:
        # rel1000 (ours) last: an upstream record's pred always matches an earlier mode
        extra = (
            ("norm1000", "pixel", "rel1000")
            if record_mode(record) == "text"
            else ("norm1000", "pixel")
        )
        modes += [m for m in extra if m not in modes]
    return modes


def raw_points(obj: Mapping) -> Any:
    return obj.get("bbox_2d") if "bbox_2d" in obj else obj.get("points")


def record_has_coord_tokens(record: Mapping) -> bool:
    specials = record.get("raw_special_tokens")
    return isinstance(specials, list) and any(
        decode_coord(t) is not None for t in specials if is_coord_token(t)
    )


def record_mode(record: Mapping) -> str:
    return "coord" if str(record.get("mode") or "").strip().lower() == "coord" else "text"


def _bins(raw: Mapping, upstream_range: bool) -> list[int] | None:
    """The 4 bins of a raw bbox object (tokens decoded, numbers rounded), or None."""
    try:
        gtype, pts = geometry(dict(raw))
    except ObjectError:
        return None
    if gtype != "bbox_2d" or len(pts) != 4:
        return None
    bins = []
    for v in pts:
        b = decode_coord(v)
        if b is not None:
            bins.append(b)
            continue
        if isinstance(v, bool) or is_coord_token(v):
            return None
        try:
            x = float(v)
        except (TypeError, ValueError, OverflowError):
            return None
        if not math.isfinite(x):
            return None
        b = int(round(x))
        if b < 0 or (upstream_range and b > COORD_MAX):
            return None
        bins.append(b)
    return bins


def _rebuild(record: Mapping, pred_mode: str, width: int, height: int, upstream_range: bool):
    raw = record.get("raw_output_json")
    if not isinstance(raw, dict) or not isinstance(raw.get("objects"), list):
        return None
    rebuilt, bins = [], []
    for obj in raw["objects"]:
        if not isinstance(obj, dict):
            continue
        try:
            std = standardize(obj, record_mode(record), pred_mode, width, height)
        except ObjectError:
            continue
        rebuilt.append(std)
        bins.append(_bins(obj, upstream_range) if std["type"] == "bbox_2d" else None)
    return rebuilt, bins


def _int_points(points: Any) -> list[int] | None:
    if not isinstance(points, list):
        return None
    try:
        return [int(round(float(v))) for v in points]
    except (TypeError, ValueError, OverflowError):
        return None


def _same(pred: Sequence[Mapping], rebuilt: Sequence[Mapping]) -> bool:
    if len(pred) != len(rebuilt):
        return False
    for a, b in zip(pred, rebuilt, strict=True):
        if str(a.get("type", "")) != str(b.get("type", "")):
            return False
        if str(a.get("desc") or "").strip() != str(b.get("desc") or "").strip():
            return False
        pa, pb = _int_points(a.get("points")), _int_points(b.get("points"))
        if pa is None or pb is None or pa != pb:
            return False
    return True


def aligned_bins(record: Mapping, preds: list[Mapping], upstream_range: bool) -> list | str:
    """Per-pred bins (None where unknown), or the failure reason for every object."""
    if record.get("raw_output_json") is None:
        return [None] * len(preds)
    try:
        width, height = int(record.get("width")), int(record.get("height"))
    except (TypeError, ValueError, OverflowError):
        return [None] * len(preds)
    found = None
    for pred_mode in alignment_modes(record):
        cand = _rebuild(record, pred_mode, width, height, upstream_range)
        if cand is None:
            continue
        found = cand
        if _same(preds, cand[0]):
            return cand[1]
    return "pred_alignment_mismatch" if found is not None else [None] * len(preds)
