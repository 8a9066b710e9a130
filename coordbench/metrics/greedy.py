"""The COCO / LVIS greedy matcher on (detection, GT) candidate pairs built once [ARCH-EVAL-SPEED].

pycocotools and lvis-api match each (image, category) list alone: detections by score rank, each
taking the free GT of highest IoU >= the threshold (the last in GT order on exact ties), a
non-ignored GT before an ignored one. Both sort the GT by ignore flag, stably, so inside each
ignore class the order is the file's. Pairs are therefore enumerated once with the GT in file
order per (category, image) key: a pick made separately in the non-ignored and the ignored class
is then exact for every area range, and the IoUs, which do not depend on the range, are computed
once instead of once per range. A pair whose IoU is under the lowest threshold can never match,
so it is dropped before any greedy pass (most pairs of a crowded image).

The greedy runs the detections of one rank of every (image, category) list at once, ranks in
order, all thresholds together: a detection's candidates only depend on the GT taken by the
detections ranked before it in its own list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coordbench.geometry import iou_pairs_xywh
from coordbench.metrics.ragged import ragged_chunks


@dataclass
class RankedPairs:
    """Candidate pairs grouped by detection rank (a detection's pairs in GT order)."""

    det: np.ndarray  # (P,) int32 detection row
    gt: np.ndarray  # (P,) int32 GT row (GT sorted by key, file order within a key)
    iou: np.ndarray  # (P,) float64
    bounds: np.ndarray  # (max rank + 2,) pairs of rank r are det[bounds[r]:bounds[r + 1]]


def ranked_pairs(
    d_key: np.ndarray,
    d_box: np.ndarray,
    d_rank: np.ndarray,
    g_key: np.ndarray,
    g_box: np.ndarray,
    g_crowd: np.ndarray | None,
    lowest: float,
) -> RankedPairs:
    """The pairs (same key) with IoU >= `lowest`; `g_key` sorted, file order within a key.
    `g_crowd` marks crowd regions (pycocotools' IoU over the detection's area; None: none)."""
    g_start = np.searchsorted(g_key, d_key, "left")
    n_pair = np.searchsorted(g_key, d_key, "right") - g_start
    dets, gts, ious = [], [], []
    for det, off in ragged_chunks(n_pair):
        gt = g_start[det] + off
        iou = iou_pairs_xywh(d_box[det], g_box[gt], None if g_crowd is None else g_crowd[gt])
        keep = iou >= lowest
        dets.append(det[keep].astype(np.int32))
        gts.append(gt[keep].astype(np.int32))
        ious.append(iou[keep])
    det = np.concatenate(dets) if dets else np.zeros(0, np.int32)
    by_rank = np.argsort(d_rank[det], kind="stable")  # rank by rank, detection order kept
    det = det[by_rank]
    return RankedPairs(
        det,
        np.concatenate(gts or [np.zeros(0, np.int32)])[by_rank],
        np.concatenate(ious or [np.zeros(0)])[by_rank],
        np.searchsorted(d_rank[det], np.arange(int(d_rank.max(initial=-1)) + 2)),
    )


def pick(score: np.ndarray, pair_idx: np.ndarray, starts: np.ndarray, n_det: int) -> np.ndarray:
    """(T, n_det) pair index of the best candidate per detection (last on ties), or -1."""
    if not len(starts):
        return np.full((score.shape[0], n_det), -1)
    best = np.maximum.reduceat(score, starts, axis=1)
    seg = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, score.shape[1])))
    at_best = (score == best[:, seg]) & (score >= 0)
    return np.maximum.reduceat(np.where(at_best, pair_idx, -1), starts, axis=1)


def greedy_by_rank(
    pairs: RankedPairs,
    n_det: int,
    n_gt: int,
    g_ign: np.ndarray,
    thr: np.ndarray,
    g_crowd: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) matched GT row (-1: none) and ignore flag per detection, for thresholds `thr`
    (T,). A crowd GT (`g_crowd`) is never used up: several detections may match one region."""
    n_thr = len(thr)
    match = np.full((n_thr, n_det), -1, np.int32)  # GT rows; int32 halves the traffic
    det_ign = np.zeros((n_thr, n_det), bool)
    taken = np.zeros((n_thr, n_gt), bool)
    thr = np.asarray(thr, np.float64)[:, None]
    for r in range(len(pairs.bounds) - 1):
        a, b = pairs.bounds[r], pairs.bounds[r + 1]
        if a == b:
            continue
        d, g, iou = pairs.det[a:b], pairs.gt[a:b], pairs.iou[a:b]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        ok = (iou[None, :] >= thr) & ~taken[:, g]
        ign = g_ign[g][None, :]
        pidx = np.broadcast_to(np.arange(b - a), ok.shape)
        pick_n = pick(np.where(ok & ~ign, iou, -1.0), pidx, starts, len(starts))
        pick_i = pick(np.where(ok & ign, iou, -1.0), pidx, starts, len(starts))
        best = np.where(pick_n >= 0, pick_n, pick_i)
        t_idx, s_idx = np.nonzero(best >= 0)
        chosen = best[t_idx, s_idx]
        g_chosen = g[chosen]
        match[t_idx, d[chosen]] = g_chosen
        det_ign[t_idx, d[chosen]] = g_ign[g_chosen]
        if g_crowd is not None:
            keep = ~g_crowd[g_chosen]  # a crowd region stays free for later detections
            t_idx, g_chosen = t_idx[keep], g_chosen[keep]
        taken[t_idx, g_chosen] = True
    return match, det_ign
