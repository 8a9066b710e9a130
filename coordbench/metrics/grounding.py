"""Referring-expression grounding: Acc@0.5 / Acc@0.75 / mean IoU of the top-1 box, per split.

The protocol every RefCOCO/+/g paper reports [ARCH-GROUNDING]: each sample (one expression) has
exactly one GT box; the answer's top-1 box is the one with the highest score, the first in
answer order on ties or when the answer carries no scores; the sample is a hit at t when
IoU(top-1, GT) >= t. An answer without a box is a miss with IoU 0. IoU is computed on the
boxes as given, the way pycocotools' `maskUtils.iou` computes it for boxes (no +1 pixel), in the
original image's pixels when the record carries its original size and box (a prediction made on
the resized preset image is scaled by orig/preset first), so numbers do not depend on the
rescale preset's rounding of the GT.

Pure and torch-free: records in, plain data out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordbench.errors import DataError
from coordbench.rundir import files as A
from coordbench.rundir.csvcells import safe_cell
from coordbench.rundir.layout import METRICS, PER_IMAGE

THRESHOLDS = (0.5, 0.75)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two [x1, y1, x2, y2] boxes, as pycocotools computes it for boxes (no +1)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def top1(preds: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-scored box; the first in answer order on ties or without scores."""
    best, best_score = None, -math.inf
    for p in preds:
        s = p.get("score")
        s = float(s) if isinstance(s, int | float) and not isinstance(s, bool) else -math.inf
        if best is None or s > best_score:
            best, best_score = p, s
    return best


def _xyxy(points: Any) -> list[float] | None:
    if isinstance(points, list | tuple) and len(points) == 4:
        try:
            box = [float(v) for v in points]
        except (TypeError, ValueError):
            return None
        if all(math.isfinite(v) for v in box):
            return box
    return None


def _pred_boxes(rec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in rec.get("pred") or []:
        if not isinstance(p, dict) or p.get("type", "bbox_2d") != "bbox_2d":
            continue
        box = _xyxy(p.get("points", p.get("bbox_2d")))
        if box is not None:
            out.append({"box": box, "score": p.get("score")})
    return out


def _frames(rec: dict[str, Any]) -> tuple[list[float] | None, float, float]:
    """The GT box and the scale from the record's (preset) frame to the scoring frame."""
    w, h = rec.get("width"), rec.get("height")
    ow, oh = rec.get("orig_width"), rec.get("orig_height")
    orig = _xyxy(rec.get("gt_orig_bbox"))
    if orig is not None and all(isinstance(v, int | float) and v > 0 for v in (w, h, ow, oh)):
        return orig, ow / w, oh / h
    gts = [g for g in rec.get("gt") or [] if isinstance(g, dict)]
    return (_xyxy(gts[0].get("points")) if len(gts) == 1 else None), 1.0, 1.0


@dataclass
class GroundingResult:
    """Plain data: headline metrics, per split, per sample (in record order)."""

    metrics: dict[str, float | int]
    per_split: dict[str, dict[str, float | int]]
    per_sample: list[dict[str, Any]]
    counters: dict[str, int] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=lambda: {"warnings": []})
    calibration: dict[str, Any] | None = None


def _sample_row(rec: dict[str, Any], i: int) -> dict[str, Any]:
    gt, sx, sy = _frames(rec)
    if gt is None:
        raise DataError(
            f"record {i} (sample {rec.get('sample_id')!r}) has no single GT box: a grounding "
            "record holds exactly one (`gt` with one box, or `gt_orig_bbox`)"
        )
    best = top1(_pred_boxes(rec))
    pred = None
    if best is not None:
        b = best["box"]
        pred = [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy]
    iou = box_iou(pred, gt) if pred is not None else 0.0
    row = {
        "sample_id": rec.get("sample_id"),
        "file_name": rec.get("image"),
        "split": str(rec.get("split") or "all"),
        "query": rec.get("query"),
        "gt_box": gt,
        "pred_box": pred,
        "n_pred": len(rec.get("pred") or []),
        "iou": iou,
    }
    for t in THRESHOLDS:
        row[f"hit@{t}"] = 1 if pred is not None and iou >= t else 0
    return row


def _summarise(rows: list[dict[str, Any]]) -> dict[str, float | int]:
    n = len(rows)
    out: dict[str, float | int] = {}
    for t in THRESHOLDS:
        out[f"grounding_Acc@{t}"] = sum(r[f"hit@{t}"] for r in rows) / n if n else 0.0
    out["grounding_mIoU"] = sum(r["iou"] for r in rows) / n if n else 0.0
    out["grounding_n"] = n
    out["grounding_no_box"] = sum(1 for r in rows if r["pred_box"] is None)
    return out


def evaluate_grounding(records: Sequence[dict[str, Any]]) -> GroundingResult:
    """Score scored records of a grounding run (one expression and one GT box per record)."""
    rows = [_sample_row(r, i) for i, r in enumerate(records)]
    splits: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        splits.setdefault(r["split"], []).append(r)
    per_split = {name: _summarise(rs) for name, rs in splits.items()}
    metrics = _summarise(rows)
    counters = {"samples": len(rows), "no_box": int(metrics["grounding_no_box"])}
    return GroundingResult(metrics, per_split, rows, counters)


PER_SPLIT = "per_split.csv"


def per_split_csv(per_split: dict[str, dict[str, float | int]]) -> str:
    """`split,n,Acc@0.5,Acc@0.75,mIoU`, one row per split, splits in the data's order."""
    lines = ["split,n,Acc@0.5,Acc@0.75,mIoU"]
    for name, m in per_split.items():
        lines.append(
            ",".join(
                [
                    safe_cell(name).replace(",", " "),
                    str(m["grounding_n"]),
                    repr(float(m["grounding_Acc@0.5"])),
                    repr(float(m["grounding_Acc@0.75"])),
                    repr(float(m["grounding_mIoU"])),
                ]
            )
        )
    return "\n".join(lines)


def write_grounding_eval(result: GroundingResult, eval_dir: Path) -> None:
    """metrics.json (headline, per split, counters), per_image.json (one row per sample, in
    record order: compare's paired bootstrap reads `hit@0.5`, `hit@0.75` and `iou`) and
    per_split.csv."""
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema_version": A.SCHEMA_VERSION,
        "metrics": result.metrics,
        "counters": result.counters,
        "per_split": result.per_split,
        "diagnostics": result.diagnostics,
    }
    A.write_json(eval_dir / METRICS, doc)
    A.write_json(eval_dir / PER_IMAGE, result.per_sample)
    A.write_bytes_atomic(eval_dir / PER_SPLIT, A.utf8(per_split_csv(result.per_split)))
