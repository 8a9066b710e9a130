"""Scored gt_vs_pred records -> validated per-image GT and predictions [UP-EVAL-INGEST].

Geometry follows upstream: points are pixel ints unless they are coord tokens (then norm1000,
`k/999*(W-1)`), clamped to [0, W-1] x [0, H-1] and rounded half-to-even; a GT box is the extent
of its points, a predicted `bbox_2d` must have x2 > x1 and y2 > y1 *as given* [UP-REVERSED-BOX].
Every record with a size becomes an image, including records with no GT (deviation from
[UP-EMPTY-GT]: an empty-GT record never shifts another record's predictions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from coordbench.errors import DataError
from coordbench.geometry import (
    is_coord_token,
    norm1000_to_px,
    parse_coord_token,
    round_clamp_px,
)
from coordbench.metrics.semantic import normalize_desc

# upstream EvalCounters [UP-EVAL-DIR], in its order; metrics.json `counters` has exactly these keys
COUNTER_KEYS = tuple(
    "invalid_json invalid_geometry invalid_coord missing_size size_mismatch multi_image_ignored "
    "degenerate empty_pred unknown_desc unknown_dropped semantic_mapped semantic_unmapped "
    "semantic_report_failed lvis_matched_verified_positive lvis_verified_negative_unmatched "
    "lvis_ignored_not_exhaustive lvis_ignored_unevaluable".split()
)
GEOM_TYPES = ("bbox_2d", "poly")


@dataclass
class EvalImage:
    """One evaluated record: validated GT and predictions in pixel ints, xyxy `bbox`."""

    index: int  # position of the record in the evaluated list (COCO image id, per_image image_id)
    file_name: str
    width: int
    height: int
    gts: list[dict[str, Any]] = field(default_factory=list)
    preds: list[dict[str, Any]] = field(default_factory=list)
    invalid_gt: list[dict[str, Any]] = field(default_factory=list)
    invalid_pred: list[dict[str, Any]] = field(default_factory=list)
    _pred_norm: list[str] | None = field(default=None, repr=False, compare=False)

    def pred_descs(self) -> list[str]:
        """Normalised pred descs, computed once (F1 scope, diagnostics and shares read them)."""
        if self._pred_norm is None or len(self._pred_norm) != len(self.preds):
            self._pred_norm = [normalize_desc(p["desc"]) for p in self.preds]
        return self._pred_norm


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTER_KEYS, 0)


def _geometry(obj: Any) -> tuple[str, list[Any]] | str:
    """(type, flat points) of an object, or an upstream invalid reason."""
    if not isinstance(obj, dict):
        return "geometry_keys"
    keys = [k for k in GEOM_TYPES if obj.get(k) is not None]
    if len(keys) > 1:
        return "geometry_keys"
    if keys:
        kind, raw = keys[0], obj[keys[0]]
    else:
        kind, raw = obj.get("type"), obj.get("points")
        if kind is not None and kind not in GEOM_TYPES:
            return "geometry_kind"
        if kind is None or raw is None:
            return "geometry_keys"
    if not isinstance(raw, list | tuple) or any(isinstance(v, list | tuple) for v in raw):
        return "geometry_points"
    if (kind == "bbox_2d" and len(raw) != 4) or (kind == "poly" and (len(raw) < 6 or len(raw) % 2)):
        return "geometry_points"
    return kind, list(raw)


def _to_pixels(raw: list[Any], width: int, height: int, norm1000: bool) -> list[int] | None:
    """Numbers (or coord tokens) -> clamped pixel ints; None when a value is not a number."""
    lim = (width - 1, height - 1)
    if not norm1000 and all(type(v) is int for v in raw):  # fast path: pixel ints (our runner)
        return [max(0, min(lim[i % 2], v)) for i, v in enumerate(raw)]
    tokens = any(is_coord_token(v) for v in raw)
    vals: list[float] = []
    for v in raw:
        k = parse_coord_token(v)
        if k is None:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                return None
            k = v
        vals.append(float(k))
    size = (width, height)
    to_px = norm1000_to_px if tokens or norm1000 else round_clamp_px  # [UP-DENORM]
    return [to_px(v, size[i % 2]) for i, v in enumerate(vals)]


def _extent(pts: list[int]) -> list[int]:
    return [min(pts[0::2]), min(pts[1::2]), max(pts[0::2]), max(pts[1::2])]


def _prepare_gt(obj: Any, w: int, h: int, counters: dict[str, int]) -> dict[str, Any] | str:
    geom = _geometry(obj)
    if isinstance(geom, str):
        counters["invalid_geometry"] += 1
        return geom
    kind, raw = geom
    pts = _to_pixels(raw, w, h, norm1000=False)  # upstream GT ignores the record's coord_mode hint
    if pts is None:
        counters["invalid_coord"] += 1
        return "coord_parse"
    box = _extent(pts)
    if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
        counters["degenerate"] += 1
        return "degenerate"
    return {"type": kind, "points": pts, "desc": obj.get("desc", ""), "bbox": box}


def _fast_pred(obj: Any, w: int, h: int) -> dict[str, Any] | None:
    """The common case (a `type: bbox_2d` dict with 4 pixel ints), without the general checks."""
    if type(obj) is not dict or obj.get("type") != "bbox_2d" or "bbox_2d" in obj or "poly" in obj:
        return None
    raw = obj.get("points")
    if type(raw) is not list or len(raw) != 4:
        return None
    x1, y1, x2, y2 = raw
    if not (type(x1) is int and type(y1) is int and type(x2) is int and type(y2) is int):
        return None
    w1, h1 = w - 1, h - 1
    box = [
        0 if x1 < 0 else (w1 if x1 > w1 else x1),
        0 if y1 < 0 else (h1 if y1 > h1 else y1),
        0 if x2 < 0 else (w1 if x2 > w1 else x2),
        0 if y2 < 0 else (h1 if y2 > h1 else y2),
    ]
    if box[2] <= box[0] or box[3] <= box[1]:
        return None  # degenerate: the general path counts it
    desc = obj.get("desc", "")
    pred = {"type": "bbox_2d", "points": box, "bbox": box, "desc": str(desc).strip()}
    if "score" in obj:
        pred["score"] = obj["score"]
    return pred


def _fast_preds(preds: list[Any], w: int, h: int) -> list[dict[str, Any]] | None:
    """`_fast_pred` over a whole answer in one loop (no call per box); None as soon as one
    object needs the general path, which then handles the answer object by object."""
    out = []
    w1, h1 = w - 1, h - 1
    for obj in preds:
        if type(obj) is not dict or obj.get("type") != "bbox_2d" or "bbox_2d" in obj:
            return None
        raw = obj.get("points")
        if type(raw) is not list or len(raw) != 4 or "poly" in obj:
            return None
        x1, y1, x2, y2 = raw
        if not (type(x1) is int and type(y1) is int and type(x2) is int and type(y2) is int):
            return None
        x1 = 0 if x1 < 0 else (w1 if x1 > w1 else x1)
        y1 = 0 if y1 < 0 else (h1 if y1 > h1 else y1)
        x2 = 0 if x2 < 0 else (w1 if x2 > w1 else x2)
        y2 = 0 if y2 < 0 else (h1 if y2 > h1 else y2)
        if x2 <= x1 or y2 <= y1:
            return None
        box = [x1, y1, x2, y2]
        pred = {
            "type": "bbox_2d",
            "points": box,
            "bbox": box,
            "desc": str(obj.get("desc", "")).strip(),
        }
        if "score" in obj:
            pred["score"] = obj["score"]
        out.append(pred)
    return out


def _prepare_pred(
    obj: Any, w: int, h: int, norm1000: bool, counters: dict[str, int]
) -> dict[str, Any] | str:
    if not norm1000 and (fast := _fast_pred(obj, w, h)) is not None:
        return fast
    geom = _geometry(obj)
    if isinstance(geom, str):
        counters["invalid_geometry"] += 1
        return geom
    kind, raw = geom
    pts = _to_pixels(raw, w, h, norm1000)
    if pts is None:
        counters["invalid_coord"] += 1
        return "coord_parse"
    box = _extent(pts) if kind == "poly" else pts  # a bbox is used as given: reversed -> degenerate
    if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
        counters["degenerate"] += 1
        return "degenerate"
    pred = {"type": kind, "points": pts, "bbox": box, "desc": str(obj.get("desc", "")).strip()}
    if "score" in obj:
        pred["score"] = obj["score"]
    return pred


def _size(rec: dict[str, Any]) -> tuple[int, int] | None:
    try:
        w, h = int(rec.get("width") or 0), int(rec.get("height") or 0)
    except (TypeError, ValueError):
        raise DataError(f"record {rec.get('image')!r}: width/height must be integers") from None
    return (w, h) if w > 0 and h > 0 else None


def _file_name(rec: dict[str, Any], idx: int) -> str:
    if isinstance(rec.get("image"), str):
        return rec["image"]
    images = rec.get("images")
    if isinstance(images, list) and images:
        return str(images[0])
    return f"image_{idx}.jpg"


def _list(rec: dict[str, Any], key: str, legacy: str) -> list[Any]:
    """rec[key], or rec[legacy] when that is missing or empty (upstream's fallbacks); else []."""
    value = rec.get(key) or rec.get(legacy)
    return value if isinstance(value, list) else []


def prepare_image(rec: dict[str, Any], idx: int, counters: dict[str, int]) -> EvalImage | None:
    """Validate one record; None (counted `missing_size`) when it has no usable size."""
    if not isinstance(rec, dict):
        raise DataError(f"record {idx} is a {type(rec).__name__}, expected a JSON object")
    size = _size(rec)
    if size is None:
        counters["missing_size"] += 1
        return None
    w, h = size
    img = EvalImage(idx, _file_name(rec, idx), w, h)
    for obj in _list(rec, "gt", "objects"):
        got = _prepare_gt(obj, w, h, counters)
        if isinstance(got, dict):
            img.gts.append(got)
        else:
            img.invalid_gt.append({"reason": got, "raw": obj})
    preds = _list(rec, "pred", "predictions")
    if not preds:
        counters["empty_pred"] += 1
        return img
    norm1000 = rec.get("coord_mode") == "norm1000"
    if not norm1000 and (fast := _fast_preds(preds, w, h)) is not None:
        img.preds = fast
        return img
    for obj in preds:
        got = _prepare_pred(obj, w, h, norm1000, counters)
        if isinstance(got, dict):
            img.preds.append(got)
        else:
            img.invalid_pred.append({"reason": got, "raw": obj})
    return img


def check_score_provenance(records: list[dict[str, Any]]) -> None:
    """COCO needs scored records [UP-SCORED-ONLY]: provenance on every record."""
    for i, rec in enumerate(records):
        src = rec.get("pred_score_source") if isinstance(rec, dict) else None
        if not isinstance(src, str) or not src.strip():
            raise DataError(
                f"record {i} ({_file_name(rec, i) if isinstance(rec, dict) else '?'}) has no "
                "`pred_score_source`: COCO scoring needs scored records (gt_vs_pred_scored.jsonl)"
            )
        ver = rec.get("pred_score_version")
        if isinstance(ver, bool) or not isinstance(ver, int):
            raise DataError(
                f"record {i} ({_file_name(rec, i)}): `pred_score_version` must be an int, "
                f"got {ver!r}"
            )


def parse_score(value: Any, record_idx: int, object_idx: int) -> float:
    """A prediction's score: a finite number in [0, 1], else a DataError naming the object."""
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case; NaN fails the compare
        return value
    where = f"record {record_idx}, pred {object_idx}"
    if value is None or isinstance(value, bool):
        raise DataError(f"{where}: missing or non-numeric `score` {value!r}")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: non-numeric `score` {value!r}") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise DataError(f"{where}: `score` must be a finite number in [0, 1], got {value!r}")
    return score


def prepare_images(records: list[dict[str, Any]], counters: dict[str, int]) -> list[EvalImage]:
    out = []
    for i, rec in enumerate(records):
        img = prepare_image(rec, i, counters)
        if img is not None:
            out.append(img)
    return out
