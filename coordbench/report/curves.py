"""Box and score readers for the gallery, and the precision-recall curve of the report (numpy only).

The report matches nothing itself: the PR curve takes its TP flags from the evaluation's COCOeval
matching (`metrics.calibration.matched_detections`, the one the calibration numbers come from),
and the gallery takes its colours from eval/matches.jsonl.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

XYXY = tuple[float, float, float, float]


def box_of(obj: Any) -> XYXY | None:
    """xyxy of a `bbox_2d` object, or None for polygons and malformed points (never raises)."""
    if not isinstance(obj, dict) or obj.get("type", "bbox_2d") != "bbox_2d":
        return None
    pts = obj.get("points")
    if not isinstance(pts, list | tuple) or len(pts) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in pts)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return None
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def score_of(obj: dict) -> float:
    """A prediction's score; unscored predictions count as 1.0 (upstream's constant score
    source)."""
    s = obj.get("score")
    try:
        s = float(s)
    except (TypeError, ValueError):
        return 1.0
    return s if math.isfinite(s) else 1.0


def pr_curve(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Recall, precision (at each rank, by descending score) and all-point interpolated AP.

    AP is the area under the monotone precision envelope (VOC 2010+ style), not COCO's 101-point
    sampling, so it can differ slightly from AP50 in the summary.
    """
    if n_gt <= 0 or len(scores) == 0:
        return np.zeros(0), np.zeros(0), 0.0
    order = np.argsort(-scores, kind="stable")
    hits = tp[order].astype(float)
    ctp = np.cumsum(hits)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(hits) + 1)
    env = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return recall, precision, float(np.sum(steps * env))
