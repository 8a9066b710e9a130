"""Scored gt_vs_pred records -> validated per-image GT and predictions [UP-EVAL-INGEST].

Geometry follows upstream: points are pixel ints unless they are coord tokens (then norm1000,
`k/999*(W-1)`), clamped to [0, W-1] x [0, H-1] and rounded half-to-even; a GT box is the extent
of its points, a predicted `bbox_2d` must have x2 > x1 and y2 > y1 *as given* [UP-REVERSED-BOX].
Every record with a size becomes an image, including records with no GT (deviation from
[UP-EMPTY-GT]: an empty-GT record never shifts another record's predictions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import numpy as np

from coordbench.errors import DataError
from coordbench.geometry import (
    is_coord_token,
    norm1000_to_px,
    parse_coord_token,
    round_clamp_px,
)

# upstream EvalCounters [UP-EVAL-DIR], in its order; metrics.json `counters` has exactly these keys
COUNTER_KEYS = tuple(
    "invalid_json invalid_geometry invalid_coord missing_size size_mismatch multi_image_ignored "
    "degenerate empty_pred unknown_desc unknown_dropped semantic_mapped semantic_unmapped "
    "semantic_report_failed lvis_matched_verified_positive lvis_verified_negative_unmatched "
    "lvis_ignored_not_exhaustive lvis_ignored_unevaluable".split()
)
GEOM_TYPES = ("bbox_2d", "poly")


class EvalImage:
    """One evaluated record: validated GT and predictions in pixel ints, xyxy `bbox`.

    Predictions that took the columnar fast path (`_columns`) are kept as arrays; `preds`
    builds their dicts only when a caller asks (the metrics read the arrays, [ARCH-EVAL-SPEED]).
    """

    __slots__ = (
        "index",
        "file_name",
        "width",
        "height",
        "gts",
        "invalid_gt",
        "invalid_pred",
        "_preds",
        "cols",
    )

    def __init__(
        self,
        index: int,
        file_name: str,
        width: int,
        height: int,
        gts: list[dict[str, Any]] | None = None,
        preds: list[dict[str, Any]] | None = None,
        invalid_gt: list[dict[str, Any]] | None = None,
        invalid_pred: list[dict[str, Any]] | None = None,
    ):
        self.index = index  # position of the record in the evaluated list (COCO image id)
        self.file_name = file_name
        self.width = width
        self.height = height
        self.gts = gts if gts is not None else []
        self.invalid_gt = invalid_gt if invalid_gt is not None else []
        self.invalid_pred = invalid_pred if invalid_pred is not None else []
        self._preds = preds if preds is not None else []
        self.cols: PredColumns | None = None

    def __repr__(self) -> str:
        return f"EvalImage({self.index}, {self.file_name!r}, {self.width}x{self.height})"

    @property
    def preds(self) -> list[dict[str, Any]]:
        if self.cols is not None:
            self._preds, self.cols = self.cols.dicts(), None
        return self._preds

    @preds.setter
    def preds(self, value: list[dict[str, Any]]) -> None:
        self._preds, self.cols = value, None

    @property
    def n_preds(self) -> int:
        return len(self.cols.desc) if self.cols is not None else len(self._preds)

    def pred_boxes(self) -> np.ndarray:
        """(n, 4) xyxy boxes (the fast path's int64 arrays, no dict built)."""
        if self.cols is not None:
            return self.cols.box
        return np.array([p["bbox"] for p in self._preds]).reshape(-1, 4)  # ints stay ints

    def pred_desc_list(self) -> list[str]:
        """Stripped descs, as given (not normalised)."""
        if self.cols is not None:
            return self.cols.desc
        return [p["desc"] for p in self._preds]

    def pred_score_list(self) -> list[Any]:
        """Raw scores; `MISSING` where a prediction has none."""
        if self.cols is not None:
            return self.cols.score
        return [p.get("score", MISSING) for p in self._preds]

    def has_poly(self) -> bool:
        return self.cols is None and any(p["type"] == "poly" for p in self._preds)


MISSING = None  # a prediction without a `score` (parse_score rejects it like an explicit null)


@dataclass
class PredColumns:
    """An answer of `bbox_2d` predictions with pixel-int points, as columns."""

    box: np.ndarray  # (n, 4) int64 xyxy, clamped, non-degenerate
    desc: list[str]  # str(desc).strip()
    score: list[Any]  # raw `score` values, MISSING when absent
    has_score: list[bool] | None = None  # None: every prediction has a `score` key

    def dicts(self) -> list[dict[str, Any]]:
        out = []
        has = self.has_score
        for j, (box, desc, score) in enumerate(
            zip(self.box.tolist(), self.desc, self.score, strict=True)
        ):
            pred = {"type": "bbox_2d", "points": box, "bbox": box, "desc": desc}
            if has is None or has[j]:
                pred["score"] = score
            out.append(pred)
        return out


class ColumnPreds(Sequence):
    """A record's `pred` list read straight into columns (`metrics.scored_read`) [ARCH-EVAL-MEMORY].

    Only answers whose every object is exactly `{"type": "bbox_2d", "points": [4 ints], "desc":
    str, "score"?}` (desc already stripped, no box degenerate in its image) are kept this way,
    so the columns are all the scorer reads; a caller that indexes or iterates gets dicts equal
    to the objects of the file (built on demand, one by one)."""

    __slots__ = ("box", "desc", "score", "has_score")

    def __init__(
        self, box: np.ndarray, desc: list[str], score: list[Any], has_score: list[bool] | None
    ):
        self.box = box  # (n, 4) int64 points as given (not clamped)
        self.desc = desc
        self.score = score  # raw values, MISSING where absent
        self.has_score = has_score  # None: every object has a `score` key

    def __len__(self) -> int:
        return len(self.desc)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        obj = {"type": "bbox_2d", "points": self.box[i].tolist(), "desc": self.desc[i]}
        if self.has_score is None or self.has_score[i]:
            obj["score"] = self.score[i]
        return obj

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ColumnPreds | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def raw_scores(self) -> list[Any]:
        """`obj.get("score")` of every object (None where absent), without building dicts."""
        return self.score


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


def _int_box(obj: Any, w: int, h: int) -> tuple[int, int, int, int] | None:
    """The 4 points of a `type: bbox_2d` dict with pixel ints (bools excluded), clamped to the
    image; None for anything else (the general path then checks and counts it)."""
    if type(obj) is not dict or obj.get("type") != "bbox_2d" or "bbox_2d" in obj or "poly" in obj:
        return None
    raw = obj.get("points")
    if type(raw) is not list or len(raw) != 4:
        return None
    x1, y1, x2, y2 = raw
    if not (type(x1) is int and type(y1) is int and type(x2) is int and type(y2) is int):
        return None
    w1, h1 = w - 1, h - 1
    return (
        0 if x1 < 0 else (w1 if x1 > w1 else x1),
        0 if y1 < 0 else (h1 if y1 > h1 else y1),
        0 if x2 < 0 else (w1 if x2 > w1 else x2),
        0 if y2 < 0 else (h1 if y2 > h1 else y2),
    )


def _fast_gt(obj: Any, w: int, h: int) -> dict[str, Any] | None:
    """The common GT without the general checks; its box is its points' extent."""
    pts = _int_box(obj, w, h)
    if pts is None:
        return None
    x1, y1, x2, y2 = pts
    box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    if box[2] <= box[0] or box[3] <= box[1]:
        return None  # degenerate: the general path counts it
    return {"type": "bbox_2d", "points": list(pts), "desc": obj.get("desc", ""), "bbox": box}


def _prepare_gt(obj: Any, w: int, h: int, counters: dict[str, int]) -> dict[str, Any] | str:
    if (fast := _fast_gt(obj, w, h)) is not None:
        return fast
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
    """The common prediction without the general checks; its box is used as given."""
    pts = _int_box(obj, w, h)
    if pts is None or pts[2] <= pts[0] or pts[3] <= pts[1]:
        return None  # degenerate: the general path counts it
    box = list(pts)
    pred = {"type": "bbox_2d", "points": box, "bbox": box, "desc": str(obj.get("desc", "")).strip()}
    if "score" in obj:
        pred["score"] = obj["score"]
    return pred


_ABSENT = object()  # a `score` key that is not there (not the same as `"score": null`)


def _split(values: list[Any], bounds: list[int]) -> list[list[Any]]:
    return [values[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _flat_columns(objs: list[Any]) -> tuple[np.ndarray, list[str], list[Any]] | None:
    """(boxes, stripped descs, raw scores) of objects that all take the fast path (dicts with
    `type: bbox_2d`, no `bbox_2d`/`poly` key, `points` = 4 ints, bools excluded), else None.
    Each check is one C-level pass (`map` over the objects), not a Python loop per box."""
    get = dict.get
    if set(map(type, objs)) != {dict} or set(map(get, objs, repeat("type"))) != {"bbox_2d"}:
        return None
    if any(map(dict.__contains__, objs, repeat("bbox_2d"))) or any(
        map(dict.__contains__, objs, repeat("poly"))
    ):
        return None
    pts = list(map(get, objs, repeat("points")))
    if set(map(type, pts)) != {list} or set(map(len, pts)) != {4}:
        return None
    if set(map(type, chain.from_iterable(pts))) != {int}:
        return None
    try:
        box = np.fromiter(chain.from_iterable(pts), np.int64, 4 * len(pts)).reshape(-1, 4)
    except OverflowError:  # an int beyond int64: the general path clamps it as a Python int
        return None
    desc = list(map(get, objs, repeat("desc"), repeat("")))
    if set(map(type, desc)) != {str}:
        desc = list(map(str, desc))
    return box, list(map(str.strip, desc)), list(map(get, objs, repeat("score"), repeat(_ABSENT)))


def _columns(
    answers: list[list[Any]], sizes: list[tuple[int, int]]
) -> list[PredColumns | None] | None:
    """`PredColumns` of every answer at once (None for an answer with a degenerate box, which
    the general path counts), or None when some object needs the general path."""
    objs = list(chain.from_iterable(answers))
    flat = _flat_columns(objs) if objs else None
    if flat is None:
        return None
    box, desc, score = flat
    counts = np.fromiter(map(len, answers), np.int64, len(answers))
    lim = np.repeat(np.asarray(sizes, np.int64).reshape(-1, 2) - 1, counts, axis=0)
    np.clip(box, 0, lim[:, [0, 1, 0, 1]], out=box)
    bad = (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])
    bounds = [0, *np.cumsum(counts).tolist()]
    bad_answer = np.add.reduceat(bad, bounds[:-1]) > 0 if len(bad) else []
    has = None
    if _ABSENT in score:
        has = [v is not _ABSENT for v in score]
        score = [v if k else MISSING for v, k in zip(score, has, strict=True)]
    parts = zip(_split(desc, bounds), _split(score, bounds), bounds[:-1], bounds[1:], strict=True)
    out: list[PredColumns | None] = []
    for i, (d, sc, lo, hi) in enumerate(parts):
        if bad_answer[i]:
            out.append(None)
        else:
            out.append(PredColumns(box[lo:hi], d, sc, has[lo:hi] if has is not None else None))
    return out


def _read_columns(
    answers: list[ColumnPreds], heads: list[tuple[EvalImage, Any]]
) -> list[PredColumns]:
    """`PredColumns` of answers the reader kept as columns: clamped to their image in one numpy
    pass (the reader only kept answers with no degenerate box)."""
    if not answers:
        return []
    box = np.concatenate([a.box for a in answers])
    counts = np.fromiter(map(len, answers), np.int64, len(answers))
    sizes = np.array([(img.width, img.height) for img, _ in heads], np.int64)
    lim = np.repeat(sizes - 1, counts, axis=0)
    np.clip(box, 0, lim[:, [0, 1, 0, 1]], out=box)
    bounds = [0, *np.cumsum(counts).tolist()]
    return [
        PredColumns(box[lo:hi], a.desc, a.score, a.has_score)
        for a, lo, hi in zip(answers, bounds[:-1], bounds[1:], strict=True)
    ]


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


def records_without_size(records: list[Any]) -> list[int]:
    """Positions of the records (objects) that have no usable width/height: the scorer drops
    them (counted `missing_size`, upstream); entry points say so, or refuse when it is all."""
    return [i for i, r in enumerate(records) if isinstance(r, dict) and _size(r) is None]


def dropped_size_note(records: list[Any], missing: list[int], where: str) -> str:
    """ "dropped 1 of 8 records without a usable width/height: image_id 3 (record 3)"."""
    named = []
    for i in missing[:5]:
        rec = records[i]
        key = next((k for k in ("image_id", "sample_id", "image") if k in rec), None)
        named.append(f"{key} {rec[key]!r} (record {i})" if key else f"record {i}")
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"dropped {len(missing)} of {len(records)} records of {where} without a usable "
        f"width/height (positive integers): {', '.join(named)}{more}"
    )


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
    return value if isinstance(value, list | ColumnPreds) else []


def _image_head(
    rec: dict[str, Any], idx: int, counters: dict[str, int]
) -> tuple[EvalImage, list[Any], bool] | None:
    """(image with its GT, raw predictions, norm1000 hint); None when it has no usable size."""
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
    return img, preds, rec.get("coord_mode") == "norm1000"


def _general_preds(
    img: EvalImage, preds: list[Any], norm1000: bool, counters: dict[str, int]
) -> None:
    """Object by object, with every check and counter (anything the fast path declined)."""
    for obj in preds:
        got = _prepare_pred(obj, img.width, img.height, norm1000, counters)
        if isinstance(got, dict):
            img.preds.append(got)
        else:
            img.invalid_pred.append({"reason": got, "raw": obj})


def prepare_image(rec: dict[str, Any], idx: int, counters: dict[str, int]) -> EvalImage | None:
    """Validate one record; None (counted `missing_size`) when it has no usable size."""
    return (prepare_images([rec], counters, first_index=idx) or [None])[0]


def prepare_images(
    records: list[dict[str, Any]], counters: dict[str, int], *, first_index: int = 0
) -> list[EvalImage]:
    """Validate records; the answers that take the fast path are read as columns, all at once
    (then answer by answer when some object needs the general path)."""
    heads = []
    for i, rec in enumerate(records):
        head = _image_head(rec, first_index + i, counters)
        if head is not None:
            heads.append(head)
    read = [(img, p) for img, p, _ in heads if isinstance(p, ColumnPreds)]
    cols = _read_columns([p for _, p in read], read)
    for (img, _), c in zip(read, cols, strict=True):
        img.cols = c
    fast = [
        (img, preds)
        for img, preds, norm1000 in heads
        if preds and not norm1000 and not isinstance(preds, ColumnPreds)
    ]
    sizes = [(img.width, img.height) for img, _ in fast]
    cols = _columns([p for _, p in fast], sizes)
    if cols is None:  # some object needs the general path: find which answers, one by one
        cols = [(_columns([p], [wh]) or [None])[0] for (_, p), wh in zip(fast, sizes, strict=True)]
    for (img, _), c in zip(fast, cols, strict=True):
        img.cols = c
    for img, preds, norm1000 in heads:
        if preds and img.cols is None:
            _general_preds(img, preds, norm1000, counters)
    return [img for img, _, _ in heads]


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
