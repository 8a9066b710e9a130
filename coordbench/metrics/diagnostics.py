"""Honest-read diagnostics: the failure modes a headline mAP hides [ARCH-DIAGNOSTICS].

Works on gt_vs_pred records, scored or not; uses our extra record keys `parse_status` and
`finish_reason` when present. The "predict nothing" baseline is scored by the same code as a
real run (records with their predictions removed), so its numbers are what the scorer says,
not what we assume (its macro F1 is not 0 when some images have no GT).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from coordbench.metrics.detection import score_detections
from coordbench.metrics.f1 import object_iou_matrix
from coordbench.metrics.ingest import EvalImage, new_counters, prepare_images
from coordbench.metrics.result import EvalOptions
from coordbench.metrics.semantic import Encoder, normalize_desc

DUPLICATE_IOU = 0.95  # brief: same class and IoU >= 0.95 within an image is a duplicate
COLLAPSE_SHARE = 0.5  # brief: one class above 50 % of all predictions
COLLAPSE_OVER_GT = 0.2  # warn only when that share exceeds the class's GT share by 20 points
WARN_RATE = 0.05  # warn when 5 % or more of the records are malformed / truncated / salvaged
TIE_SHARE = (
    0.5  # warn when half the predictions share one score (AP then ranks by order, [UP-LOGPROBS])
)
PARSE_STATUSES = ("ok", "salvaged", "empty", "truncated", "malformed")
BASELINE_KEYS = (
    "bbox_AP",
    "bbox_AP50",
    "bbox_AR100",
    "f1ish@0.50_f1_full_micro",
    "f1ish@0.50_recall_full_micro",
    "f1ish@0.50_f1_full_macro",
)


def duplicates(images: list[EvalImage]) -> dict[str, int]:
    """Predictions that repeat an earlier same-class prediction of their image (IoU >= 0.95)."""
    dup_preds = dup_pairs = dup_images = 0
    for img in images:
        if len(img.preds) < 2:
            continue
        ious = object_iou_matrix(img.preds, img.preds, img.width, img.height)
        cls = np.array([normalize_desc(p["desc"]) for p in img.preds], dtype=object)
        same = (cls[:, None] == cls[None, :]) & (ious >= DUPLICATE_IOU)
        upper = np.triu(same, k=1)
        pairs = int(upper.sum())
        dup_pairs += pairs
        dup_preds += int(upper.any(axis=0).sum())
        dup_images += pairs > 0
    return {
        "duplicate_pairs": dup_pairs,
        "duplicate_preds": dup_preds,
        "images_with_duplicates": dup_images,
    }


def class_shares(images: list[EvalImage]) -> dict[str, Any]:
    preds = Counter(normalize_desc(p["desc"]) for i in images for p in i.preds)
    gts = Counter(normalize_desc(g.get("desc", "")) for i in images for g in i.gts)
    n_pred, n_gt = sum(preds.values()), sum(gts.values())
    if not n_pred:
        return {
            "top_pred_class": None,
            "top_pred_share": None,
            "top_class_gt_share": None,
            "class_collapse": False,
        }
    top, n = preds.most_common(1)[0]
    share = n / n_pred
    return {
        "top_pred_class": top,
        "top_pred_share": share,
        "top_class_gt_share": gts.get(top, 0) / n_gt if n_gt else None,
        "class_collapse": share > COLLAPSE_SHARE,
    }


def score_ties(records: list[dict[str, Any]]) -> float | None:
    scores = Counter(
        p.get("score") for r in records for p in (r.get("pred") or []) if isinstance(p, dict)
    )
    scores.pop(None, None)
    total = sum(scores.values())
    return scores.most_common(1)[0][1] / total if total else None


def baseline_nothing(
    records: list[dict[str, Any]], options: EvalOptions, encoder: Encoder | None
) -> dict[str, float]:
    """Headline metrics of the degenerate run that predicts nothing, through the real scorer."""
    empty = [
        {
            **r,
            "pred": [],
            "pred_score_source": r.get("pred_score_source") or "none",
            "pred_score_version": r.get("pred_score_version")
            if isinstance(r.get("pred_score_version"), int)
            else 1,
        }
        for r in records
        if isinstance(r, dict)
    ]
    m = score_detections(empty, options, encoder=encoder).metrics
    return {k: m[k] for k in BASELINE_KEYS if k in m}


def _rates(records: list[dict[str, Any]], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    status = Counter(r.get("parse_status") for r in records if r.get("parse_status") is not None)
    if status:
        out["parse_status_counts"] = {s: status.get(s, 0) for s in PARSE_STATUSES}
        out["parse_status_rates"] = {s: status.get(s, 0) / n for s in PARSE_STATUSES}
    finish = [r.get("finish_reason") for r in records if r.get("finish_reason") is not None]
    out["truncation_rate"] = sum(f == "length" for f in finish) / len(finish) if finish else None
    out["empty_pred_rate"] = sum(not r.get("pred") for r in records) / n
    # strings that were not valid UTF-8 (a `\\ud800` escape), written as U+FFFD by the parser
    out["lone_surrogates_replaced"] = sum(
        issues.count("lone_surrogate")
        for r in records
        if isinstance(issues := r.get("parse_issues"), list)
    )
    # an empty answer on an image without objects is right: only images with GT count as missed
    with_gt = [r for r in records if r.get("gt")]
    out["missed_images"] = sum(not r.get("pred") for r in with_gt)
    out["images_with_gt"] = len(with_gt)
    return out


def _warnings(d: dict[str, Any]) -> list[str]:
    w = []
    rates = d.get("parse_status_rates") or {}
    for s in ("malformed", "truncated", "salvaged"):
        if rates.get(s, 0) >= WARN_RATE:
            w.append(f"{rates[s]:.1%} of outputs were {s} when parsed")
    if (d.get("truncation_rate") or 0) >= WARN_RATE:
        w.append(
            f"{d['truncation_rate']:.1%} of generations hit max_new_tokens (finish_reason=length)"
        )
    if d.get("lone_surrogates_replaced"):
        w.append(
            f"{d['lone_surrogates_replaced']} lone surrogate(s) in model answers were not valid "
            "UTF-8 and were written as U+FFFD"
        )
    missed, with_gt = d["missed_images"], d["images_with_gt"]
    if with_gt and missed / with_gt >= WARN_RATE:
        w.append(
            f"{missed / with_gt:.1%} of images with objects have no prediction "
            f"({missed} of {with_gt})"
        )
    if d["duplicate_preds"]:
        w.append(
            f"{d['duplicate_preds']} duplicate predictions (same class, IoU >= {DUPLICATE_IOU}) "
            f"in {d['images_with_duplicates']} images"
        )
    gt = d["top_class_gt_share"]
    if d["class_collapse"] and (gt is None or d["top_pred_share"] - gt > COLLAPSE_OVER_GT):
        gt_txt = "no GT" if gt is None else f"GT share {gt:.1%}"
        w.append(
            f"class collapse: {d['top_pred_share']:.1%} of predictions are "
            f"{d['top_pred_class']!r} ({gt_txt})"
        )
    if (d.get("score_tie_share") or 0) >= TIE_SHARE:
        w.append(
            f"{d['score_tie_share']:.1%} of predictions share one score: "
            "AP ranks them by input order"
        )
    return w


def diagnostics(
    records: list[dict[str, Any]],
    options: EvalOptions | None = None,
    *,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    """Plain dict of rates, counts, flags, the predict-nothing baseline and `warnings`."""
    records = [r for r in records if isinstance(r, dict)]
    n = max(1, len(records))
    images = prepare_images(records, new_counters())
    d: dict[str, Any] = {"n_records": len(records), **_rates(records, n)}
    d["pred_total"] = sum(len(i.preds) for i in images)
    d.update(duplicates(images))
    d["duplicate_rate"] = d["duplicate_preds"] / d["pred_total"] if d["pred_total"] else 0.0
    d.update(class_shares(images))
    d["score_tie_share"] = score_ties(records)
    d["baseline_predict_nothing"] = baseline_nothing(records, options or EvalOptions(), encoder)
    d["warnings"] = _warnings(d)
    return d
