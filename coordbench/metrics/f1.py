"""F1-ish set matching at IoU thresholds [UP-F1ISH]; scores are not used.

Per image and threshold: class-agnostic greedy matching over (pred, gt) pairs with IoU >= thr,
sorted by IoU desc, then pred index, then gt index. A match whose descs disagree (not equal
after normalisation and cosine < threshold) counts once as FP and once as FN in the "full"
counts. With `pred_scope="annotated"` a prediction whose desc is not close to any GT desc of
its image is ignored rather than counted as FP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coordbench.config.options import SCOPES
from coordbench.errors import ConfigError
from coordbench.geometry import iou_matrix
from coordbench.metrics.f1_match import candidate_pairs, greedy_pairs
from coordbench.metrics.ingest import EvalImage
from coordbench.metrics.pred_table import PredTable, pred_table
from coordbench.metrics.semantic import Semantic, normalize_desc

COUNT_KEYS = (
    "tp_loc",
    "fp_loc",
    "fn_loc",
    "pred_count_eval",
    "pred_count_ignored",
    "matched_sem_ok",
    "matched_sem_bad",
    "tp_full",
    "fp_full",
    "fn_full",
)


def thr_key(thr: float) -> str:
    return f"{float(thr):.2f}"


def primary_threshold(thrs: tuple[float, ...] | list[float]) -> float:
    """0.5 when listed, else the largest (upstream `_select_primary_f1ish_iou_thr`)."""
    if not thrs:
        return 0.5
    return 0.5 if any(abs(t - 0.5) < 1e-9 for t in thrs) else max(thrs)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """P = 1 with no predictions, R = 1 with no GT, F1 = 0 when P + R = 0 (upstream)."""
    p = tp / (tp + fp) if tp + fp > 0 else 1.0
    r = tp / (tp + fn) if tp + fn > 0 else 1.0
    return p, r, (2.0 * p * r / (p + r) if p + r > 0 else 0.0)


def _mask_iou(a: dict, b: dict, w: int, h: int) -> float:
    from pycocotools import mask as mask_utils

    def rle(o: dict) -> Any:
        x1, y1, x2, y2 = o["bbox"]
        seg = [o["points"]] if o["type"] == "poly" else [[x1, y1, x2, y1, x2, y2, x1, y2]]
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))

    try:
        return float(mask_utils.iou([rle(a)], [rle(b)], [0])[0][0])
    except (IndexError, TypeError, ValueError):
        return 0.0


def object_iou_matrix(preds: list[dict], gts: list[dict], w: int, h: int) -> np.ndarray:
    """(P, G) IoU of objects: box IoU of their xyxy `bbox`, mask IoU when either is a polygon.

    Boxes go through `geometry.iou_matrix`; polygons are rasterised on the w x h image.
    """
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)))
    ious = iou_matrix([o["bbox"] for o in preds], [o["bbox"] for o in gts])
    p_poly = [i for i, o in enumerate(preds) if o["type"] == "poly"]
    g_poly = [j for j, o in enumerate(gts) if o["type"] == "poly"]
    pairs = {(i, j) for i in p_poly for j in range(len(gts))}
    pairs |= {(i, j) for j in g_poly for i in range(len(preds))}
    for i, j in pairs:  # only pairs with a polygon: boxes are already exact
        ious[i, j] = _mask_iou(preds[i], gts[j], w, h)
    return ious


def greedy_match(ious: np.ndarray, thr: float) -> list[tuple[int, int, float]]:
    """1:1 matches (pred, gt, iou): pairs by IoU desc, then pred idx, then gt idx."""
    pi, gi = np.nonzero(ious >= thr)
    order = np.lexsort((gi, pi, -ious[pi, gi]))
    used_p, used_g, out = set(), set(), []
    for k in order:
        p, g = int(pi[k]), int(gi[k])
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
            out.append((p, g, float(ious[p, g])))
    return out


def scope_mask(
    gt_norm: list[list[str]],
    table: PredTable,
    scope: str,
    semantic: Semantic,
    threshold: float,
) -> np.ndarray:
    """(N,) bool: the predictions F1 evaluates. `annotated` keeps a pred whose normalised desc is
    one of its image's GT descs, or close to one by cosine (a class name is never compared with
    other class names); the rest are ignored, not counted as FP. `gt_norm`: each image's
    normalised GT descs."""
    if scope not in SCOPES:
        raise ConfigError(f"expected `pred_scope` to be one of {SCOPES} but got {scope!r}")
    if scope == "all":
        return np.ones(len(table), bool)
    norm, code = table.norm_codes()
    gsets = [set(descs) for descs in gt_norm]
    ids = {d: i for i, d in enumerate(norm)}
    gkeys = [(i << 32) | ids.setdefault(d, len(ids)) for i, gs in enumerate(gsets) for d in gs if d]
    row_key = (table.img << 32) | code
    keep = np.isin(row_key, np.array(gkeys, np.int64)) if len(gkeys) else np.zeros(len(code), bool)
    is_class = np.array([d in semantic.classes for d in norm] + [False], bool)[code]
    has_gt = np.array([bool(gs - {""}) for gs in gsets] + [False], bool)[table.img]
    only_classes = np.array([(gs - {""}) <= semantic.classes for gs in gsets] + [False], bool)[
        table.img
    ]
    empty = np.array([d == "" for d in norm] + [False], bool)[code]
    # the rest: compared by cosine with the image's GT descs (one encoder batch first)
    ask = np.flatnonzero(~keep & ~empty & has_gt & ~(only_classes & is_class))
    if not len(ask):
        return keep
    texts = {norm[c] for c in code[ask].tolist()} - semantic.classes
    for i in set(table.img[ask].tolist()):
        texts |= gsets[i]
    semantic.embed(texts)
    cands = [sorted(d for d in gs if d) for gs in gsets]
    for r, c, i in zip(ask.tolist(), code[ask].tolist(), table.img[ask].tolist(), strict=True):
        best = semantic.best(norm[c], cands[i])
        keep[r] = best is not None and best[1] >= threshold
    return keep


# a match: (pred index, gt index, IoU, pred desc, normalised pred desc, pred xyxy, pred type);
# indices are the image's own (not eval-space)
Match = tuple[int, int, float, str, str, list, str]


@dataclass
class ImageMatches:
    """One image's scope split and, per threshold key, its greedy matches in acceptance order."""

    img: EvalImage
    eval_idx: list[int]
    ignored_idx: list[int]
    matches: dict[str, list[Match]]
    gt_norm: list[str]  # normalised GT descs
    # per threshold key: (unmatched eval pred indices, unmatched GT indices), from the
    # vectorised matcher; None for an image of the per-image (polygon) path
    unmatched: dict[str, tuple[list[int], list[int]]] | None = None


def _gt_columns(images: list[EvalImage]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.fromiter((len(im.gts) for im in images), np.int64, len(images))
    boxes = [g["bbox"] for im in images for g in im.gts]
    box = np.array(boxes, np.float64).reshape(-1, 4)
    return box, np.concatenate([[0], np.cumsum(counts)])


def _poly_matches(im: EvalImage, keep: list[int], thrs: list[float]) -> dict[str, list[Match]]:
    """The per-image path for images with a polygon (mask IoU on the image)."""
    preds = im.preds
    ious = object_iou_matrix([preds[i] for i in keep], im.gts, im.width, im.height)

    def match(p: int, g: int, v: float) -> Match:
        pred = preds[keep[p]]
        return keep[p], g, v, pred["desc"], normalize_desc(pred["desc"]), pred["bbox"], pred["type"]

    return {thr_key(t): [match(*m) for m in greedy_match(ious, t)] for t in thrs}


def _split_by_image(n_images: int, img: np.ndarray, *columns: list) -> list[list]:
    """Rows grouped by image (rows already sorted by image): the values of a single column, or
    tuples of several."""
    cuts = np.searchsorted(img, np.arange(n_images + 1)).tolist()
    rows = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
    return [rows[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def match_images(
    images: list[EvalImage],
    thrs: list[float],
    scope: str,
    semantic: Semantic,
    threshold: float,
    table: PredTable | None = None,
) -> list[ImageMatches]:
    table = table if table is not None else pred_table(images)
    gt_norm = [[normalize_desc(g.get("desc", "")) for g in im.gts] for im in images]
    keep = scope_mask(gt_norm, table, scope, semantic, threshold)
    local = table.local_index(np.arange(len(table)))
    eval_idx = _split_by_image(len(images), table.img[keep], local[keep].tolist())
    ignored = _split_by_image(len(images), table.img[~keep], local[~keep].tolist())
    poly = np.array([im.has_poly() or any(g["type"] == "poly" for g in im.gts) for im in images])
    vec = keep & ~poly[table.img] if len(table) else keep
    gt_box, gt_bounds = _gt_columns(images)
    rows = np.flatnonzero(vec)
    p, g, v = candidate_pairs(
        rows, table.img[rows], table.box, gt_box, gt_bounds, min(thrs, default=0.5)
    )
    pair_img = table.img[p]
    norm, code = table.norm_codes()
    per_key, unmatched = {}, {}
    g_img = np.repeat(np.arange(len(images)), np.diff(gt_bounds))
    g_local = np.arange(len(gt_box)) - gt_bounds[g_img]
    for t in thrs:
        sel = np.flatnonzero(v >= t)
        m = sel[greedy_pairs(pair_img[sel], p[sel], g[sel], v[sel])]
        unmatched[thr_key(t)] = _unmatched(keep, p[m], g[m], table, local, g_img, g_local)
        rows_m = p[m].tolist()
        per_key[thr_key(t)] = _split_by_image(
            len(images),
            pair_img[m],
            local[p[m]].tolist(),
            (g[m] - gt_bounds[pair_img[m]]).tolist(),
            v[m].tolist(),
            [table.desc[r] for r in rows_m],
            [norm[c] for c in code[p[m]].tolist()],
            table.box[p[m]].tolist(),
            ["bbox_2d"] * len(m),
        )
    out = []
    for i, im in enumerate(images):
        if poly[i]:
            matches = _poly_matches(im, eval_idx[i], thrs)
            left = None
        else:
            matches = {key: per_key[key][i] for key in per_key}
            left = {key: (up[i], ug[i]) for key, (up, ug) in unmatched.items()}
        out.append(ImageMatches(im, eval_idx[i], ignored[i], matches, gt_norm[i], left))
    return out


def _unmatched(
    keep: np.ndarray,
    p: np.ndarray,
    g: np.ndarray,
    table: PredTable,
    local: np.ndarray,
    g_img: np.ndarray,
    g_local: np.ndarray,
) -> tuple[list[list[int]], list[list[int]]]:
    """Per image, the eval predictions and the GT no match took (image order, as the
    per-image lists), from the matched pred and GT rows of one threshold."""
    n_img = len(table.bounds) - 1
    free = keep.copy()
    free[p] = False
    rows = np.flatnonzero(free)
    g_free = np.ones(len(g_img), bool)
    g_free[g] = False
    g_rows = np.flatnonzero(g_free)
    return (
        _split_by_image(n_img, table.img[rows], local[rows].tolist()),
        _split_by_image(n_img, g_img[g_rows], g_local[g_rows].tolist()),
    )


def _match_rows(
    im: ImageMatches, key: str, semantic: Semantic, threshold: float
) -> tuple[list[dict], int, int]:
    """matches.jsonl `matches` entries and the sem ok / bad counts."""
    rows, ok_n = [], 0
    gts = im.img.gts
    for p, g, iou, desc, pd, box, kind in im.matches[key]:
        gt, gd = gts[g], im.gt_norm[g]
        sim = semantic.sim(pd, gd)
        ok = bool(pd and pd == gd) or (sim is not None and sim >= threshold)
        ok_n += ok
        rows.append(
            {
                "pred_idx": p,
                "gt_idx": g,
                "iou": iou,
                "pred_desc": desc,
                "gt_desc": gt.get("desc", ""),
                "sem_sim": sim,
                "sem_ok": ok,
                "pred_bbox": box,
                "gt_bbox": gt["bbox"],
                "pred_type": kind,
                "gt_type": gt["type"],
            }
        )
    return rows, ok_n, len(rows) - ok_n


def image_outcome(
    im: ImageMatches, key: str, thr: float, scope: str, semantic: Semantic, threshold: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per_image f1ish counts, matches.jsonl row) for one image at one threshold."""
    img, matches = im.img, im.matches[key]
    rows, ok, bad = _match_rows(im, key, semantic, threshold)
    tp, fp, fn = len(matches), len(im.eval_idx) - len(matches), len(img.gts) - len(matches)
    counts = {
        "tp_loc": tp,
        "fp_loc": fp,
        "fn_loc": fn,
        "pred_count_eval": len(im.eval_idx),
        "pred_count_ignored": len(im.ignored_idx),
        "matched_sem_ok": ok,
        "matched_sem_bad": bad,
        "sem_acc_on_matched": ok / tp if tp else 1.0,
        "tp_full": ok,
        "fp_full": fp + bad,
        "fn_full": fn + bad,
    }
    free_p, free_g = _free_indices(im, key)
    row = {
        "image_id": img.index,
        "file_name": img.file_name,
        "width": img.width,
        "height": img.height,
        "iou_thr": float(thr),
        "gt_count": len(img.gts),
        "pred_count": img.n_preds,
        "pred_count_eval": len(im.eval_idx),
        "pred_count_ignored": len(im.ignored_idx),
        "pred_scope": scope,
        "tp_loc": tp,
        "fp_loc": fp,
        "fn_loc": fn,
        "matches": rows,
        "unmatched_pred_indices": free_p,
        "ignored_pred_indices": list(im.ignored_idx),
        "unmatched_gt_indices": free_g,
    }
    return counts, row


def _free_indices(im: ImageMatches, key: str) -> tuple[list[int], list[int]]:
    """The eval predictions and GT of the image that no match of `key` took."""
    if im.unmatched is not None:
        return im.unmatched[key]
    matches = im.matches[key]
    used_p, used_g = {m[0] for m in matches}, {m[1] for m in matches}
    return (
        [i for i in im.eval_idx if i not in used_p],
        [j for j in range(len(im.img.gts)) if j not in used_g],
    )


def aggregate(key: str, counts: list[dict[str, Any]], pred_total: int) -> dict[str, float]:
    """The 24 `f1ish@{key}_*` metrics from per-image counts (micro sums, macro image means)."""
    s = {k: sum(c[k] for c in counts) for k in COUNT_KEYS}
    out: dict[str, float] = {
        "tp_loc": s["tp_loc"],
        "fp_loc": s["fp_loc"],
        "fn_loc": s["fn_loc"],
        "pred_total": pred_total,
        "pred_eval": s["pred_count_eval"],
        "pred_ignored": s["pred_count_ignored"],
    }
    for kind in ("loc", "full"):
        if kind == "full":
            out.update(
                matched_sem_ok=s["matched_sem_ok"],
                matched_sem_bad=s["matched_sem_bad"],
                sem_acc_on_matched=s["matched_sem_ok"] / s["tp_loc"] if s["tp_loc"] else 1.0,
                tp_full=s["tp_full"],
                fp_full=s["fp_full"],
                fn_full=s["fn_full"],
            )
        micro = prf(s[f"tp_{kind}"], s[f"fp_{kind}"], s[f"fn_{kind}"])
        per = [prf(c[f"tp_{kind}"], c[f"fp_{kind}"], c[f"fn_{kind}"]) for c in counts]
        macro = [float(np.mean([v[i] for v in per])) if per else 0.0 for i in range(3)]
        for i, name in enumerate(("precision", "recall", "f1")):
            out[f"{name}_{kind}_micro"] = micro[i]
        for i, name in enumerate(("precision", "recall", "f1")):
            out[f"{name}_{kind}_macro"] = macro[i]
    return {f"f1ish@{key}_{k}": float(v) for k, v in out.items()}


@dataclass
class F1Output:
    metrics: dict[str, float]
    per_image: list[dict[str, dict[str, Any]]]  # per image: {thr key: counts}
    matches: dict[str, list[dict[str, Any]]]  # thr key -> matches.jsonl rows
    primary_key: str


def evaluate_f1(
    images: list[EvalImage],
    thrs: tuple[float, ...],
    scope: str,
    semantic: Semantic,
    threshold: float,
    table: PredTable | None = None,
) -> F1Output:
    thr_list = sorted({float(t) for t in thrs})
    matched = match_images(images, thr_list, scope, semantic, threshold, table)
    texts: set[str] = set()
    classes = semantic.classes
    for im in matched:  # one encoder batch for every matched pair whose descs differ
        for ms in im.matches.values():
            for m in ms:
                pd, gd = m[4], im.gt_norm[m[1]]
                if pd != gd and pd and gd and not (pd in classes and gd in classes):
                    texts |= {pd, gd}
    semantic.embed(texts)
    pred_total = sum(i.n_preds for i in images)
    metrics: dict[str, float] = {}
    per_image: list[dict[str, dict[str, Any]]] = [{} for _ in images]
    matches: dict[str, list[dict[str, Any]]] = {}
    for t in thr_list:
        key = thr_key(t)
        outcomes = [image_outcome(im, key, t, scope, semantic, threshold) for im in matched]
        for i, (c, _) in enumerate(outcomes):
            per_image[i][key] = c
        matches[key] = [r for _, r in outcomes]
        metrics.update(aggregate(key, [c for c, _ in outcomes], pred_total))
    return F1Output(metrics, per_image, matches, thr_key(primary_threshold(thr_list)))
