"""Score-ranked matching, precision-recall curves and reliability bins for the report (numpy only).

The report needs a per-prediction TP/FP flag that respects the score ranking (the f1ish matching in
eval/matches.jsonl ignores scores), so it matches COCO-style: per image and class, predictions in
descending score order each take the unmatched same-class GT with the highest IoU >= threshold.
Classes are compared by normalised desc text; the COCO eval's semantic desc mapping is not
reproduced here, so these curves are a reading aid next to, not a replacement for, the COCO numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

XYXY = tuple[float, float, float, float]


def norm_desc(desc: Any) -> str:
    """Lower-cased, whitespace-collapsed desc (the class key for matching)."""
    return " ".join(str(desc or "").lower().split())


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


def iou(a: XYXY, b: XYXY) -> float:
    """Box IoU with continuous areas (x1-x0)*(y1-y0), as upstream f1ish (spec §7.3)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_of(obj: dict) -> float:
    """A prediction's score; unscored predictions count as 1.0 (upstream's constant score source)."""
    s = obj.get("score")
    try:
        s = float(s)
    except (TypeError, ValueError):
        return 1.0
    return s if math.isfinite(s) else 1.0


@dataclass(frozen=True)
class ImageMatch:
    """Per-image outcome: `pred_tp[i]` for each pred (None = not a box), `gt_hit[j]` for each GT."""

    pred_tp: list[bool | None]
    gt_hit: list[bool]


def match_image(gt: list[dict], pred: list[dict], iou_threshold: float = 0.5) -> ImageMatch:
    """Class-aware greedy matching by descending score (ties by pred index)."""
    gt_boxes = [box_of(g) for g in gt]
    gt_cls = [norm_desc(g.get("desc")) if isinstance(g, dict) else "" for g in gt]
    gt_hit = [False] * len(gt)
    pred_tp: list[bool | None] = [None] * len(pred)
    order = sorted(
        range(len(pred)),
        key=lambda i: (-score_of(pred[i]) if isinstance(pred[i], dict) else 0.0, i),
    )
    for i in order:
        pb = box_of(pred[i])
        if pb is None:
            continue
        cls = norm_desc(pred[i].get("desc"))
        best, best_iou = -1, iou_threshold
        for j, gb in enumerate(gt_boxes):
            if gb is None or gt_hit[j] or gt_cls[j] != cls:
                continue
            v = iou(pb, gb)
            if v >= best_iou:
                best, best_iou = j, v
        if best >= 0:
            gt_hit[best] = True
        pred_tp[i] = best >= 0
    return ImageMatch(pred_tp, gt_hit)


@dataclass(frozen=True)
class Detections:
    """Every scored box of a run, flattened: score, TP flag and class, plus GT counts per class."""

    scores: np.ndarray
    tp: np.ndarray
    classes: list[str]
    n_gt: Counter


def collect_detections(records: list[dict], iou_threshold: float = 0.5) -> Detections:
    """Match every record and flatten the predictions (one entry per valid predicted box)."""
    scores, tp, classes = [], [], []
    n_gt: Counter = Counter()
    for rec in records:
        gt = [g for g in rec.get("gt") or [] if isinstance(g, dict)]
        pred = [p for p in rec.get("pred") or [] if isinstance(p, dict)]
        n_gt.update(norm_desc(g.get("desc")) for g in gt if box_of(g) is not None)
        m = match_image(gt, pred, iou_threshold)
        for p, hit in zip(pred, m.pred_tp, strict=True):
            if hit is not None:
                scores.append(score_of(p))
                tp.append(hit)
                classes.append(norm_desc(p.get("desc")))
    return Detections(np.asarray(scores, dtype=float), np.asarray(tp, dtype=bool), classes, n_gt)


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


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins: edges, count, mean confidence and fraction TP per bin; ECE."""

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float


def reliability(scores: np.ndarray, tp: np.ndarray, n_bins: int = 10) -> Reliability:
    """ECE = sum_b n_b/N * |frac_tp_b - mean_conf_b| over equal-width bins of [0, 1] (Guo et al. 2017)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    s = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    # A score of exactly 1.0 goes in the last bin.
    idx = np.clip((s * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    conf_sum = np.bincount(idx, weights=s, minlength=n_bins)
    tp_sum = np.bincount(idx, weights=np.asarray(tp, dtype=float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, conf_sum / count, np.nan)
        acc = np.where(count > 0, tp_sum / count, np.nan)
    n = count.sum()
    ece = float(np.nansum(count * np.abs(acc - conf)) / n) if n else float("nan")
    return Reliability(edges, count, conf, acc, ece)
