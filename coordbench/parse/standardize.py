"""Parsed objects -> pixel-space `pred` entries ([UP-PARSE] + [UP-DENORM]), never raising.

Two upstream paths are reproduced: `parse_prediction` (objects of `raw_output_json` -> entries
with integer points) and `CoordinateStandardizer.process_objects` (entries or raw objects ->
clamped pixel ints, or an error code). Where upstream would crash (NaN/inf coordinates, out-of-
range token strings, digit keys `int()` cannot read) the object is dropped with an issue code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coordbench.geometry import COORD_MAX as MAX_BIN  # upstream's name for the top bin
from coordbench.geometry import (
    REL1000_MAX,
    is_coord_token,
    norm1000_to_px_float,
    parse_coord_token,
    rel1000_to_px_float,
    round_clamp_px,
)
from coordbench.parse.record import GEOMETRY_KEYS

# surface -> (upstream `mode`, upstream `pred_coord_mode`); rel1000 is coordbench's own
UPSTREAM_MODES = {
    "coord_tokens": ("coord", "auto"),
    "norm1000": ("text", "norm1000"),
    "pixel": ("text", "pixel"),
    "rel1000": ("text", "rel1000"),
}


class ObjectError(ValueError):
    """An object is dropped; `code` is upstream's error tag (or ours, for upstream crashes)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def decode_coord(value: Any) -> int | None:
    """A coord token or number as an int bin in 0..999, else None (upstream `decode_coord`).

    Upstream raises on tokens above 999; here they are simply not bins.
    """
    if is_coord_token(value):
        return parse_coord_token(value)
    try:
        v = int(round(float(value)))
    except (TypeError, ValueError, OverflowError):
        return None
    return v if 0 <= v <= MAX_BIN else None


def flatten_points(value: Any) -> list | None:
    """Flat list from `[x, y, ...]` or `[[x, y], ...]`; None on any other shape."""
    if not isinstance(value, (list, tuple)):
        return None
    if not value:
        return []
    if isinstance(value[0], (list, tuple)):
        flat: list = []
        for pair in value:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                return None
            flat.extend(pair)
        return flat
    return list(value)


def coerce_points(points: Sequence[Any]) -> tuple[list[float] | None, bool]:
    """Floats for each value (tokens decoded); (None, had_tokens) if one is not numeric."""
    had_tokens = any(is_coord_token(p) for p in points if type(p) is str)
    out: list[float] = []
    for p in points:
        if isinstance(p, bool):  # JSON true/false are not coordinates (float(True) would be 1)
            return None, had_tokens
        if type(p) is int:  # the common case; decode_coord would give float(p) too
            try:
                out.append(float(p))
            except OverflowError:
                return None, had_tokens
            continue
        b = decode_coord(p)
        if b is not None:
            out.append(float(b))
            continue
        if is_coord_token(p):
            return None, had_tokens  # token above 999: upstream raises here
        try:
            out.append(float(p))
        except (TypeError, ValueError, OverflowError):
            return None, had_tokens
    return out, had_tokens


# --------------------------------------------------------------------------- parse_prediction


@dataclass
class Entry:
    """One object from the payload, ready for standardization (upstream parse_prediction row)."""

    desc: str
    type: str | None  # None: a `line` object, passed on to fail as upstream does
    points: list[int]
    had_tokens: bool = False


def payload_objects(obj: dict) -> list | None:
    """The object list of a payload dict, including upstream's legacy single-object shapes."""
    objects = obj.get("objects")
    if isinstance(objects, list):
        return objects
    for key in ("obj", "object"):
        if isinstance(obj.get(key), dict):
            return [obj[key]]
    if any(g in obj for g in GEOMETRY_KEYS) or "line" in obj or "line_points" in obj:
        return [obj]
    return None


def prediction_entries(objects: list, issues: list[str]) -> list[Entry]:
    """Upstream `parse_prediction` over an object list; silently skipped rows become issues."""
    entries: list[Entry] = []
    for raw in objects:
        if not isinstance(raw, dict):
            issues.append("non_object_entry")
            continue
        if "line" in raw or "line_points" in raw:
            entries.append(Entry(str(raw.get("desc", "")), None, []))
            continue
        gkeys = [g for g in GEOMETRY_KEYS if g in raw]
        if len(gkeys) != 1:
            issues.append("geometry_keys")
            continue
        flat = flatten_points(raw[gkeys[0]])
        if flat is None or len(flat) % 2:
            issues.append("wrong_arity")
            continue
        points, had_tokens = coerce_points(flat)
        if points is None:
            issues.append("coord_parse")
            continue
        if had_tokens and any(v < 0 or v > MAX_BIN for v in points):
            issues.append("coord_range")
            continue
        if not all(math.isfinite(v) for v in points):
            issues.append("nonfinite")  # upstream: int(round(nan)) raises
            continue
        ints = [int(round(v)) for v in points]
        entries.append(Entry(str(raw.get("desc", "")), gkeys[0], ints, had_tokens))
    return entries


# --------------------------------------------------------------------------- standardization


def geometry(obj: dict) -> tuple[str, list]:
    """Upstream `extract_single_geometry(allow_type_and_points, allow_nested_points)`."""
    keys = [k for k in GEOMETRY_KEYS if obj.get(k) is not None]
    if len(keys) > 1:
        raise ObjectError("geometry_keys")
    if keys:
        gtype, raw = keys[0], obj[keys[0]]
    else:
        t = obj.get("type")
        if t is not None and t not in GEOMETRY_KEYS:
            raise ObjectError("geometry_kind")
        if t not in GEOMETRY_KEYS or obj.get("points") is None:
            raise ObjectError("geometry_keys")
        gtype, raw = t, obj["points"]
    if not isinstance(raw, (list, tuple)):
        raise ObjectError("geometry_points")
    pts = flatten_points(raw)
    if pts is None:
        raise ObjectError("geometry_points")
    if gtype == "bbox_2d" and len(pts) != 4:
        raise ObjectError("geometry_points")
    if gtype == "poly" and (len(pts) < 6 or len(pts) % 2):
        raise ObjectError("geometry_points")
    return gtype, pts


def _looks_pixel(points: Sequence[float], width: int, height: int) -> bool:
    """Upstream `coords_are_pixel` (text mode, pred_coord_mode auto, no tokens)."""
    if not points:
        return False
    top, side = max(points), max(width, height)
    return top > MAX_BIN or top > side or side <= MAX_BIN


def _frame(mode: str, pred_mode: str, points: list[float], had_tokens: bool, w: int, h: int) -> str:
    if mode == "coord":
        frame = "norm1000" if pred_mode == "auto" else pred_mode
        if frame == "norm1000" and any(not 0 <= p <= MAX_BIN for p in points if p == p):
            raise ObjectError("coord_range")  # NaN passes this check upstream, then fails
        return frame
    if pred_mode != "auto":
        return pred_mode
    if had_tokens:
        return "norm1000"
    return "pixel" if _looks_pixel(points, w, h) else "norm1000"


def _clamp(v: float, hi: int) -> int:
    if not math.isfinite(v):
        raise ObjectError("nonfinite")  # upstream: ValueError (NaN) or OverflowError (inf)
    return round_clamp_px(v, hi)


def _pixel_floats(points: Sequence[float], frame: str, width: int, height: int) -> list[float]:
    """Frame -> unrounded pixels (norm1000: round(v)/999*(W-1); rel1000: v/1000*W)."""
    out: list[float] = []
    for i, v in enumerate(points):
        size = width if i % 2 == 0 else height
        if frame == "norm1000":
            if not math.isfinite(v):
                raise ObjectError("nonfinite")
            v = norm1000_to_px_float(v, size)
        elif frame == "rel1000":
            v = rel1000_to_px_float(v, size)  # Qwen3-VL: 0..1000 relative to the full side
        out.append(float(v))
    return out


def to_pixels(points: Sequence[float], frame: str, width: int, height: int) -> list[int]:
    """Frame -> clamped pixel ints.

    norm1000: round(round(v)/999*(W-1)); rel1000: round(v/1000*W).
    """
    px = _pixel_floats(points, frame, width, height)
    return [_clamp(v, width if i % 2 == 0 else height) for i, v in enumerate(px)]


def _outside(points: Sequence[float], frame: str, width: int, height: int) -> bool:
    """Whether a value lies outside its frame, so that the clamp moved it: norm1000 past
    0..999 (after upstream's rounding), rel1000 past 0..1000, a pixel past 0..W / 0..H."""
    for i, v in enumerate(points):
        if frame == "norm1000":
            v, hi = round(v), MAX_BIN
        elif frame == "rel1000":
            hi = REL1000_MAX
        else:
            hi = width if i % 2 == 0 else height
        if not 0 <= v <= hi:
            return True
    return False


def standardize(obj: dict, mode: str, pred_mode: str, width: int, height: int) -> dict:
    """One object -> `{"type", "points", "desc"}` in pixels, or ObjectError(code).

    `obj` is either a parsed entry (`type`/`points`/`_had_tokens`) or a raw_output_json object.
    """
    return standardize_framed(obj, mode, pred_mode, width, height)[0]


def standardize_framed(
    obj: dict, mode: str, pred_mode: str, width: int, height: int
) -> tuple[dict, bool]:
    """`standardize`, and whether a value lay outside its frame and was clamped (upstream
    clamps text values silently; coordbench reports them as `out_of_frame`)."""
    gtype, pts = geometry(obj)
    points, had_tokens = coerce_points(pts)
    if points is None:
        raise ObjectError("coord_parse")
    had_tokens = had_tokens or bool(obj.get("_had_tokens"))
    frame = _frame(mode, pred_mode, points, had_tokens, width, height)
    px = to_pixels(points, frame, width, height)
    xs, ys = px[0::2], px[1::2]
    if max(xs) - min(xs) <= 0 or max(ys) - min(ys) <= 0:
        raise ObjectError("degenerate")
    desc = str(obj.get("desc", "")).strip()
    return {"type": gtype, "points": px, "desc": desc}, _outside(points, frame, width, height)


def entry_dict(entry: Entry) -> dict:
    """A parse_prediction row in the shape upstream hands to the standardizer."""
    if entry.type is None:
        return {"desc": entry.desc}
    return {
        "desc": entry.desc,
        "type": entry.type,
        "points": entry.points,
        "_had_tokens": entry.had_tokens,
    }
