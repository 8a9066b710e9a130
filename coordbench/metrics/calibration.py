"""Does the confidence score rank and size correctness? Spearman, ECE, AUROC, Brier.

Correctness is COCOeval's own at IoU 0.5 (class-aware, area "all"): within each (image, category)
detections in descending score order take the free GT with the highest IoU >= 0.5 (`coco_match`,
identical to pycocotools' `evaluateImg`), so the statistics cover the detections COCO evaluates
(at most 100 per image and class). Every statistic is None when it is undefined (no
predictions, all TP, constant scores), never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from coordbench.metrics.coco_match import AreaEval, CocoDets, CocoTables

IOU_THRESHOLD = 0.5  # brief: TP = matched at IoU 0.5 (COCO AP50 / F1@0.5)


@dataclass(frozen=True)
class Detections:
    """The detections COCOeval evaluates at IoU 0.5 (area "all"), one entry each, and the GT count
    per category: what the calibration statistics and the report's PR curves are computed from."""

    scores: np.ndarray  # (n,) float64
    tp: np.ndarray  # (n,) bool
    category: np.ndarray  # (n,) object: the category name of each detection
    n_gt: dict[str, int]  # category name -> GT instances COCOeval counts (npig), category order


def matched_detections(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]] | CocoDets,
    area_eval: AreaEval | None = None,
) -> Detections:
    """Scores, TP flags and categories of the evaluated detections, matched as COCOeval at IoU
    0.5; `area_eval` is the COCO scorer's own matching (area "all", first threshold 0.5)."""
    ev = area_eval or CocoTables(coco_gt, coco_preds).area_eval("all", np.array([IOU_THRESHOLD]))
    names = [str(c["name"]) for c in sorted(coco_gt["categories"], key=lambda c: c["id"])]
    n_gt = dict.fromkeys(names, 0)
    for k, n in zip(ev.npig_cat.tolist(), ev.npig.tolist(), strict=True):
        n_gt[names[k]] += int(n)
    category = np.array([names[k] for k in ev.cat.tolist()], dtype=object)
    return Detections(ev.score, ev.tp[0], category, n_gt)


def tp_flags(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]] | CocoDets,
    area_eval: AreaEval | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, TP flags) of the detections COCOeval evaluates, matched as COCOeval at IoU 0.5."""
    ev = area_eval or CocoTables(coco_gt, coco_preds).area_eval("all", np.array([IOU_THRESHOLD]))
    return ev.score, ev.tp[0]  # no category name per detection: the statistics do not read it


def rankdata(x: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank), as `scipy.stats.rankdata`; numpy
    only, so scoring does not import scipy.stats (a second of start-up). `order` is x's
    ascending argsort when the caller already has it."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable") if order is None else order
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    grp = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(xs)]
    ranks = np.empty(len(x), np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[grp]
    return ranks


def spearman(
    scores: np.ndarray, correct: np.ndarray, ranks: np.ndarray | None = None
) -> float | None:
    """Spearman's rho: Pearson correlation of the average ranks (`ranks`: the scores')."""
    if len(scores) < 2 or np.all(scores == scores[0]) or np.all(correct == correct[0]):
        return None
    a = rankdata(scores) if ranks is None else ranks
    b = _bool_ranks(correct)
    a, b = a - a.mean(), b - b.mean()
    rho = float((a @ b) / math.sqrt((a @ a) * (b @ b)))
    return rho if math.isfinite(rho) else None


def _bool_ranks(correct: np.ndarray) -> np.ndarray:
    """`rankdata(correct.astype(float))` without a sort: every FP shares the first midrank, every
    TP the second (the same expressions rankdata evaluates)."""
    n, n_false = len(correct), len(correct) - int(np.count_nonzero(correct))
    return np.where(correct, (n_false + 1 + n) / 2.0, (0 + 1 + n_false) / 2.0)


def auroc(scores: np.ndarray, correct: np.ndarray, ranks: np.ndarray | None = None) -> float | None:
    """P(score of a random TP > score of a random FP), ties counted 1/2 (midranks)."""
    n_pos = int(correct.sum())
    n_neg = len(correct) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores) if ranks is None else ranks
    return float((ranks[correct].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability_bins(scores: np.ndarray, correct: np.ndarray, n_bins: int) -> list[dict[str, Any]]:
    """Equal-width bins [k/n, (k+1)/n), the last one closed at 1.0 (a score below 0 is in none).
    One stable sort by bin instead of a mask per bin: each bin's scores stay in input order,
    so its mean is summed exactly as `scores[bin == k].mean()` sums it."""
    idx = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    key = np.maximum(idx, -1).astype(np.int16 if n_bins < 2**15 else np.int64)
    order = np.argsort(key, kind="stable")  # a radix sort for int16
    bounds = np.searchsorted(key[order], np.arange(n_bins + 1)).tolist()
    s, c = scores[order], correct[order]
    return [_bin_row(k, n_bins, s[lo:hi], c[lo:hi]) for k, (lo, hi) in enumerate(pairwise(bounds))]


def _bin_row(k: int, n_bins: int, s: np.ndarray, c: np.ndarray) -> dict[str, Any]:
    n = len(s)
    return {
        "lo": k / n_bins,
        "hi": (k + 1) / n_bins,
        "count": n,
        "mean_score": float(s.mean()) if n else None,
        "tp_rate": float(c.mean()) if n else None,
    }


def ece(bins: list[dict[str, Any]], total: int) -> float | None:
    """Expected calibration error: sum over bins of count/total * |tp_rate - mean_score|."""
    if total == 0:
        return None
    return float(
        sum(b["count"] / total * abs(b["tp_rate"] - b["mean_score"]) for b in bins if b["count"])
    )


SCORE_MEANING = (
    "the score ranks detections (for coordbench runs it comes from token log-probs); it is not a "
    "probability, so read AUROC and Spearman for ranking, the raw ECE only for its scale, and "
    "the precision-mapped ECE and quantile bins for what a score level means"
)


def quantile_bins(
    scores: np.ndarray, correct: np.ndarray, n_bins: int, order: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Equal-count bins by score rank (ties kept together): the score range, count and TP rate
    of each, readable even when every score sits in one equal-width bin."""
    if not len(scores):
        return []
    order = np.argsort(scores, kind="stable") if order is None else order
    s, c = scores[order], correct[order]
    cuts = np.unique(np.searchsorted(s, s[np.linspace(0, len(s), n_bins + 1)[1:-1].astype(int)]))
    rows = []
    for part_s, part_c in zip(np.split(s, cuts), np.split(c, cuts), strict=True):
        if len(part_s):
            rows.append(
                {
                    "lo": float(part_s[0]),
                    "hi": float(part_s[-1]),
                    "count": len(part_s),
                    "mean_score": float(part_s.mean()),
                    "tp_rate": float(part_c.mean()),
                }
            )
    return rows


def precision_at_score(
    scores: np.ndarray, correct: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """Each detection's score mapped to the empirical precision of all detections scoring at
    least as high (the PR curve's precision at that threshold; ties share one value). `order`:
    any descending order of the scores (the order within ties does not change the result)."""
    order = np.argsort(-scores, kind="stable") if order is None else order
    s = scores[order]
    tp = np.cumsum(correct[order])
    ends = np.flatnonzero(
        np.r_[s[1:] != s[:-1], len(s) > 0]
    )  # the last detection of each tie group
    last = np.repeat(ends, np.diff(ends, prepend=-1))
    out = np.empty(len(scores))
    out[order] = tp[last] / (last + 1)
    return out


def _sort_kind(scores: np.ndarray) -> str:
    """Ranks, quantile bins and mapped precision do not depend on the order within ties, so any
    sort will do (quicksort: faster); a -0.0 tied with a 0.0 could print as a bin's bound, so
    then the stable order decides, as it always did."""
    return "stable" if np.any((scores == 0) & np.signbit(scores)) else "quicksort"


def calibration(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]] | CocoDets,
    n_bins: int = 10,
    *,
    area_eval: AreaEval | None = None,
) -> dict[str, Any]:
    """Calibration summary over the COCO-evaluated predictions (plain dict, None when undefined)."""
    scores, correct = tp_flags(coco_gt, coco_preds, area_eval)
    bins = reliability_bins(scores, correct, n_bins)
    n = len(scores)
    asc = np.argsort(scores, kind=_sort_kind(scores))  # for ranks, quantiles and precision
    ranks = rankdata(scores, asc)
    mapped = precision_at_score(scores, correct, asc[::-1])
    return {
        "iou_threshold": IOU_THRESHOLD,
        "n_preds": n,
        "n_tp": int(correct.sum()),
        "tp_rate": float(correct.mean()) if n else None,
        "mean_score": float(scores.mean()) if n else None,
        "spearman": spearman(scores, correct, ranks),
        "auroc": auroc(scores, correct, ranks),
        "ece": ece(bins, n),
        "brier": float(np.mean((scores - correct) ** 2)) if n else None,
        "n_bins": n_bins,
        "bins": bins,
        "score_meaning": SCORE_MEANING,
        "ece_precision_mapped": ece(reliability_bins(mapped, correct, n_bins), n),
        "quantile_bins": quantile_bins(scores, correct, n_bins, asc),
    }
