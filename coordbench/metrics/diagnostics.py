"""Honest-read diagnostics: the failure modes a headline mAP hides [ARCH-DIAGNOSTICS].

Works on gt_vs_pred records, scored or not; uses our extra record keys `parse_status` and
`finish_reason` when present. The "predict nothing" baseline is scored by the same code as a
real run (records with their predictions removed), so its numbers are what the scorer says,
not what we assume (its macro F1 is not 0 when some images have no GT).
"""

from __future__ import annotations

from collections import Counter
from itertools import chain, repeat
from typing import Any

import numpy as np

from coordbench.geometry import iou_pairs_xywh
from coordbench.metrics.f1 import object_iou_matrix, prf, thr_key
from coordbench.metrics.ingest import ColumnPreds, EvalImage, new_counters, prepare_images
from coordbench.metrics.pred_table import PredTable, pred_table
from coordbench.metrics.ragged import PAIR_CHUNK, ragged_chunks
from coordbench.metrics.result import EvalOptions
from coordbench.metrics.semantic import Encoder, Semantic, normalize_desc

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


def _candidate_pairs(
    key: np.ndarray, boxes: np.ndarray, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(i, j) index pairs of same-key boxes with IoU >= DUPLICATE_IOU, in no particular order;
    None when the x1 windows hold more than `limit` comparisons.

    Sorted by (key, x1): IoU >= t needs the intersection width >= t * width of each box, so a
    box b right of a (x1b >= x1a) can only qualify when x1b - x1a <= (1 - t) * wa. Only that
    x1 window is compared, in chunks of bounded size (memory stays flat for huge answers).
    """
    order = np.lexsort((boxes[:, 0], key))
    k, bx = key[order], boxes[order]
    grp = np.cumsum(np.r_[True, k[1:] != k[:-1]]) - 1  # dense key rank
    # one sorted axis: key rank + x1 scaled into [0, 1); rounding is monotone, and the window
    # is a little generous, so no qualifying box is left out (IoU is then computed exactly)
    reach = bx[:, 0] + (1 - DUPLICATE_IOU) * (bx[:, 2] - bx[:, 0]) * (1 + 1e-9) + 1e-9
    scale = float(np.abs(reach).max() + np.abs(bx[:, 0]).max()) + 1.0
    lim = np.searchsorted(grp + bx[:, 0] / scale, grp + reach / scale, side="right")
    later = np.maximum(lim - np.arange(len(k)) - 1, 0)
    if limit is not None and int(later.sum()) > limit:
        return None
    xywh = np.concatenate([bx[:, :2], bx[:, 2:] - bx[:, :2]], axis=1)
    out_a, out_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a, off in ragged_chunks(later):
        b = a + 1 + off
        hit = iou_pairs_xywh(xywh[a], xywh[b]) >= DUPLICATE_IOU
        out_a.append(order[a[hit]])
        out_b.append(order[b[hit]])
    return np.concatenate(out_a), np.concatenate(out_b)


def _box_duplicates(key: np.ndarray, boxes: np.ndarray) -> tuple[int, np.ndarray]:
    """(number of duplicate pairs, indices of the boxes that repeat an earlier one).

    When the x1 windows are small (the usual case) the pairs are enumerated directly. Else
    identical boxes of one key are collapsed first (m copies: m(m-1)/2 pairs, m - 1 repeats),
    so an answer that repeats one box 10^4 times costs no pair enumeration at all.
    """
    if not len(key):
        return 0, np.zeros(0, np.int64)
    direct = _candidate_pairs(key, boxes, limit=4 * len(key) + PAIR_CHUNK)
    if direct is not None:
        a, b = direct
        return len(a), np.unique(np.maximum(a, b))
    # group equal (key, box) rows by a 64-bit hash (stable: a group's first row is its first
    # copy); two equal rows a collision keeps apart are still found below as an IoU-1 pair
    with np.errstate(over="ignore"):
        h = key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for c in range(4):
            col = boxes[:, c].astype(np.int64).astype(np.uint64)
            h = (h ^ col) * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(c + 1)
    order = np.argsort(h, kind="stable")
    sk, sb = key[order], boxes[order]
    new = np.r_[True, (sk[1:] != sk[:-1]) | np.any(sb[1:] != sb[:-1], axis=1)]
    starts = np.flatnonzero(new)
    first = order[starts]  # each distinct (key, box)'s first copy in input order
    count = np.diff(np.r_[starts, len(order)])
    inverse = np.empty(len(key), np.int64)
    inverse[order] = np.cumsum(new) - 1
    n_pairs = int((count * (count - 1) // 2).sum())
    repeats = np.flatnonzero(first[inverse] != np.arange(len(key)))  # not a box's first copy
    u_a, u_b = _candidate_pairs(key[first], boxes[first])  # type: ignore[misc]
    n_pairs += int((count[u_a] * count[u_b]).sum())
    later_first = np.maximum(first[u_a], first[u_b])  # the first copy that comes second
    return n_pairs, np.union1d(repeats, later_first)


def _poly_image_pairs(img: EvalImage) -> list[tuple[int, int]]:
    """Duplicate pairs (i < j) of an image with polygons: mask IoU, the full same-class matrix."""
    ious = object_iou_matrix(img.preds, img.preds, img.width, img.height)
    cls = np.array([normalize_desc(p["desc"]) for p in img.preds], dtype=object)
    same = np.triu((cls[:, None] == cls[None, :]) & (ious >= DUPLICATE_IOU), k=1)
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(same), strict=True)]


def duplicates(images: list[EvalImage], table: PredTable | None = None) -> dict[str, int]:
    """Predictions that repeat an earlier same-class prediction of their image (IoU >= 0.95).

    All box predictions of all images at once: keyed by (image, class), compared only within a
    key and an area window, in numpy (no Python loop over pairs). Images with polygons use mask
    IoU on their own.
    """
    table = table if table is not None else pred_table(images)
    norm, code = table.norm_codes()
    poly_pairs = []
    poly_img = np.zeros(len(images) + 1, bool)
    for n, img in enumerate(images):
        if img.n_preds >= 2 and img.has_poly():
            poly_img[n] = True
            poly_pairs += [(n, i, j) for i, j in _poly_image_pairs(img)]
    rows = np.flatnonzero(~poly_img[table.img]) if len(table) else np.zeros(0, np.int64)
    img_of = table.img[rows]
    key = img_of * max(1, len(norm)) + code[rows]
    n_pairs, later = _box_duplicates(key, table.box[rows].astype(np.float64).reshape(-1, 4))
    later_imgs = img_of[later].tolist()
    return {
        "duplicate_pairs": n_pairs + len(poly_pairs),
        "duplicate_preds": len(later) + len({(n, j) for n, _, j in poly_pairs}),
        "images_with_duplicates": len(set(later_imgs) | {n for n, _, _ in poly_pairs}),
    }


def class_shares(images: list[EvalImage], table: PredTable | None = None) -> dict[str, Any]:
    table = table if table is not None else pred_table(images)
    norm, code = table.norm_codes()
    gts = Counter(normalize_desc(g.get("desc", "")) for i in images for g in i.gts)
    n_pred, n_gt = len(code), sum(gts.values())
    if not n_pred:
        return {
            "top_pred_class": None,
            "top_pred_share": None,
            "top_class_gt_share": None,
            "class_collapse": False,
        }
    counts = np.bincount(code, minlength=len(norm))
    k = int(np.argmax(counts))  # the first-seen class among equal counts, as Counter's
    top, share = norm[k], int(counts[k]) / n_pred
    return {
        "top_pred_class": top,
        "top_pred_share": share,
        "top_class_gt_share": gts.get(top, 0) / n_gt if n_gt else None,
        "class_collapse": share > COLLAPSE_SHARE,
    }


def _raw_scores(records: list[dict[str, Any]]) -> list[Any]:
    """`score` of every dict prediction (None where absent), in record order; answers the
    reader kept as columns give theirs without building dicts."""
    parts = []
    for r in records:
        pred = r.get("pred") or []
        if isinstance(pred, ColumnPreds):
            parts.append(pred.raw_scores())
        elif type(pred) is list and set(map(type, pred)) == {dict}:
            parts.append(list(map(dict.get, pred, repeat("score"))))
        else:
            parts.append([p.get("score") for p in pred if isinstance(p, dict)])
    return list(chain.from_iterable(parts))


def score_ties(records: list[dict[str, Any]]) -> float | None:
    """The largest share of the scored predictions that have one same score (None: none)."""
    raw = _raw_scores(records)
    if raw and set(map(type, raw)) == {float}:  # the common case, in numpy (no Counter)
        s = np.sort(np.array(raw, np.float64))
        cuts = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
        return int(np.diff(cuts).max()) / len(s)
    scores = Counter(raw)
    scores.pop(None, None)
    total = sum(scores.values())
    return scores.most_common(1)[0][1] / total if total else None


def baseline_nothing(
    images: list[EvalImage], options: EvalOptions, semantic: Semantic
) -> dict[str, float]:
    """Headline metrics of the degenerate run that predicts nothing: what the real scorer gives
    for the ingested images with their predictions removed (tests hold the two equal), in
    closed form instead of a second scoring of every GT box.

    COCO without any detection is upstream's all-0.0. F1 at 0.5 has no TP and no FP: each
    image's FN is its GT count, so by `prf` micro recall and F1 are 1.0 only when there is no
    GT at all, and an image's F1 is 1.0 exactly when it has no GT (macro: their share).
    `semantic` is unused: with no prediction no desc is compared.
    """
    del semantic
    out = {"bbox_AP": 0.0, "bbox_AP50": 0.0, "bbox_AR100": 0.0}
    thrs = [t for t in options.f1_iou_thrs if abs(t - 0.5) < 1e-9] or list(options.f1_iou_thrs)
    if not any(thr_key(t) == "0.50" for t in thrs):  # the F1 keys read are those at 0.50
        return out
    n_gt = [len(i.gts) for i in images]
    _, recall, f1 = prf(0, 0, sum(n_gt))
    macro = [prf(0, 0, n)[2] for n in n_gt]
    out["f1ish@0.50_f1_full_micro"] = float(f1)
    out["f1ish@0.50_recall_full_micro"] = float(recall)
    out["f1ish@0.50_f1_full_macro"] = float(np.mean(macro)) if macro else 0.0
    return {k: out[k] for k in BASELINE_KEYS if k in out}


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
    images: list[EvalImage] | None = None,
    semantic: Semantic | None = None,
    table: PredTable | None = None,
) -> dict[str, Any]:
    """Plain dict of rates, counts, flags, the predict-nothing baseline and `warnings`.

    `images` are the records already ingested by the evaluation (ingested here when None).
    """
    options = options or EvalOptions()
    records = [r for r in records if isinstance(r, dict)]
    n = max(1, len(records))
    if images is None:
        images = prepare_images(records, new_counters())
    semantic = semantic or Semantic(options.semantic_model, encoder)
    d: dict[str, Any] = {"n_records": len(records), **_rates(records, n)}
    table = table if table is not None else pred_table(images)
    d["pred_total"] = len(table)
    d.update(duplicates(images, table))
    d["duplicate_rate"] = d["duplicate_preds"] / d["pred_total"] if d["pred_total"] else 0.0
    d.update(class_shares(images, table))
    d["score_tie_share"] = score_ties(records)
    d["baseline_predict_nothing"] = baseline_nothing(images, options, semantic)
    d["warnings"] = _warnings(d)
    return d
