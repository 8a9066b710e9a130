"""F1-ish matching of every image at once [UP-F1ISH], [ARCH-EVAL-SPEED].

The rule is upstream's per-image greedy: pairs with IoU >= thr taken by IoU desc, then pred
index, then gt index, each pred and gt used once. Here all images' pairs are one array. A pair
that comes first (in that order) among the remaining pairs of both its pred and its gt is taken
by the greedy whatever happens elsewhere, so each round takes all such pairs at once and drops
the pairs they block; the few pairs left after `ROUNDS` rounds (long chains of near-ties) are
finished by the sequential greedy. The result is the sequential greedy's, match for match.
"""

from __future__ import annotations

import numpy as np

from coordbench.geometry import iou_pairs_xyxy
from coordbench.metrics.ragged import ragged_chunks

ROUNDS = 8


def _x_windows(
    row_img: np.ndarray,
    pred_box: np.ndarray,
    gt_box: np.ndarray,
    gt_bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(GT rows sorted by (image, x1), first and end position in it of each prediction's
    candidates): the GT of its image with x1 in (px1 - widest GT, px2), a superset of the GT
    whose x range overlaps the prediction's (IoU > 0 needs that)."""
    n_img = len(gt_bounds) - 1
    g_img = np.repeat(np.arange(n_img), np.diff(gt_bounds))
    gx1, gw = gt_box[:, 0], gt_box[:, 2] - gt_box[:, 0]
    widest = np.zeros(n_img)
    np.maximum.at(widest, g_img, np.maximum(gw, 0))
    lo_x = float(min(gx1.min(), pred_box[:, 0].min()))
    w_all = float(widest.max())
    span = float(max(gt_box[:, 2].max(), pred_box[:, 2].max())) - lo_x + 2 * w_all + 3
    order = np.lexsort((gx1, g_img))
    key = g_img[order] * span + (gx1[order] - lo_x + w_all + 1)  # image bands never overlap
    base = row_img * span - lo_x + w_all + 1
    start = np.searchsorted(key, base + pred_box[:, 0] - widest[row_img], "right")
    end = np.searchsorted(key, base + pred_box[:, 2], "left")
    return order, start, np.maximum(end, start)


def candidate_pairs(
    rows: np.ndarray,
    row_img: np.ndarray,
    pred_box: np.ndarray,
    gt_box: np.ndarray,
    gt_bounds: np.ndarray,
    min_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred row, gt row, IoU) of every same-image pair with IoU >= min_iou (> 0), in no
    particular order. Only GT in the prediction's x window are compared, in chunks of bounded
    size (an answer of 10^4 boxes on an image of 10^4 GT stays fast and small)."""
    empty = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    if not len(rows) or not len(gt_box):
        return empty
    boxes = np.asarray(pred_box[rows], np.float64)
    gts = np.asarray(gt_box, np.float64)
    g_order, start, end = _x_windows(row_img, boxes, gts, gt_bounds)
    # IoU <= x overlap / max(widths) (inter <= ix * min(h), union >= max(area)): the x columns
    # alone drop most window pairs (~90 % at 100 boxes per image) before the full IoU
    px1, px2 = boxes[:, 0], boxes[:, 2]
    gx1, gx2 = gts[g_order, 0], gts[g_order, 2]
    pw, gw = px2 - px1, gx2 - gx1
    bound = min_iou * (1 - 1e-9)  # rounding slack: the exact IoU below decides
    out_p, out_g, out_v = [empty[0]], [empty[1]], [empty[2]]
    for owner, off in ragged_chunks(end - start):
        pos = start[owner] + off
        if bound > 0:
            ix = np.minimum(px2[owner], gx2[pos]) - np.maximum(px1[owner], gx1[pos])
            near = ix >= bound * np.maximum(pw[owner], gw[pos])
            owner, pos = owner[near], pos[near]
        p = rows[owner]
        g = g_order[pos]
        iou = iou_pairs_xyxy(pred_box[p], gt_box[g])
        hit = iou >= min_iou
        out_p.append(p[hit])
        out_g.append(g[hit])
        out_v.append(iou[hit])
    return np.concatenate(out_p), np.concatenate(out_g), np.concatenate(out_v)


def _first_of_each(values: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each value (np.unique's index sort is stable)."""
    mask = np.zeros(len(values), bool)
    mask[np.unique(values, return_index=True)[1]] = True
    return mask


def greedy_pairs(img: np.ndarray, pred: np.ndarray, gt: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Indices of the matched pairs, ordered by image then acceptance order (IoU desc, pred,
    gt): the per-image sequential greedy's matches."""
    order = np.lexsort((gt, pred, -iou, img))
    p, g = pred[order], gt[order]
    alive = np.arange(len(order))
    taken = []
    for _ in range(ROUNDS):
        if not len(alive):
            break
        pa, ga = p[alive], g[alive]
        acc = alive[_first_of_each(pa) & _first_of_each(ga)]
        taken.append(acc)
        blocked = np.isin(pa, p[acc]) | np.isin(ga, g[acc])
        alive = alive[~blocked]
    if len(alive):  # what the rounds left: the sequential greedy over the remaining pairs
        used_p, used_g, rest = set(), set(), []
        for r, pp, gg in zip(alive.tolist(), p[alive].tolist(), g[alive].tolist(), strict=True):
            if pp not in used_p and gg not in used_g:
                used_p.add(pp)
                used_g.add(gg)
                rest.append(r)
        taken.append(np.array(rest, np.int64))
    pos = np.sort(np.concatenate(taken)) if taken else np.zeros(0, np.int64)
    return order[pos]
