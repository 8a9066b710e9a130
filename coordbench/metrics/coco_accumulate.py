"""pycocotools' `accumulate` + `summarize` for one image set, on the numpy matcher's arrays.

`resample.CocoResampler` answers many image multisets at once (bootstrap); one evaluation of
one set needs none of that machinery. This follows `COCOeval.accumulate` operation for operation
per (category, area, maxDets), vectorised over the IoU thresholds: detections in a category's
stream ordered by score (stable, images in id order, each image's in score-rank order), cut at
maxDets per image, cumulative TP / FP, recall = tp / npig, precision = tp / (tp + fp + eps), the
right-to-left envelope, precision read at the 101 recall thresholds (0 past the last detection).
So the stats are bit-identical to pycocotools' (the bench and the parity tests check it).
numpy only: scipy (the resampler's sparse matrices) costs a second of start-up.
"""

from __future__ import annotations

import numpy as np

from coordbench.metrics.coco_images import AREA_NAMES, PerImageEval
from coordbench.metrics.coco_match import AreaEval


def summarize(s: np.ndarray) -> float:
    """pycocotools `_summarize`: mean of entries > -1, or -1 when there is none."""
    v = s[s > -1]
    return float(np.mean(v)) if v.size else -1.0


# stat -> (precision or recall, area range, maxDets, IoU threshold or None for all), as `summarize`
STATS = {
    "AP": ("p", "all", 100, None),
    "AP50": ("p", "all", 100, 0.5),
    "AP75": ("p", "all", 100, 0.75),
    "APs": ("p", "small", 100, None),
    "APm": ("p", "medium", 100, None),
    "APl": ("p", "large", 100, None),
    "AR1": ("r", "all", 1, None),
    "AR10": ("r", "all", 10, None),
    "AR100": ("r", "all", 100, None),
    "ARs": ("r", "small", 100, None),
    "ARm": ("r", "medium", 100, None),
    "ARl": ("r", "large", 100, None),
}


MAX_DETS = (1, 10, 100)  # pycocotools Params.maxDets
EPS = np.spacing(1)


def stream_order(ev: AreaEval) -> np.ndarray:
    """Detections in accumulate's order: by category, score desc (stable), image, rank. The
    rows of every area range are the same detections, so one order serves all of them. Both
    producers emit rows by (category, image, rank), so a stable sort by (category, -score)
    keeps image and rank order within ties (checked; else the full sort)."""
    n_img, span = int(ev.img.max(initial=0)) + 1, int(ev.rank.max(initial=0)) + 1
    pos = (ev.cat.astype(np.int64) * n_img + ev.img) * span + ev.rank
    if np.all(pos[1:] >= pos[:-1]):
        return by_group_then_score(ev.cat, ev.score)
    return np.lexsort((ev.rank, ev.img, -ev.score, ev.cat))


def by_group_then_score(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """`np.lexsort((-score, group))`: by group, score descending, input order on ties. Two
    stable sorts, the second on 16-bit groups when they fit (numpy sorts those by radix, in
    one pass: a third less time than lexsort at 1 M rows)."""
    if not len(group) or group.min() < 0 or group.max() >= 1 << 15:
        return np.lexsort((-score, group))
    by_score = np.argsort(-score, kind="stable")
    return by_score[np.argsort(group[by_score].astype(np.int16), kind="stable")]


def accumulate_area(
    ev: AreaEval,
    n_cats: int,
    rec_thrs: np.ndarray,
    max_det: int,
    order: np.ndarray | None = None,
    precision: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(T, R, K) precision and (T, K) recall of one area range and maxDets (-1: no GT).

    Without `precision` only the recall is computed: a category's final recall is its TP count
    over its GT count, the last entry of accumulate's cumulative sum, so no sum is needed."""
    n_thr = ev.tp.shape[0]
    npig = np.bincount(ev.npig_cat, weights=ev.npig, minlength=n_cats).astype(np.int64)
    if not precision:  # TP counts need no order
        keep = ev.rank < max_det
        tp = np.stack(
            [np.bincount(ev.cat[keep & ev.tp[t]], minlength=n_cats) for t in range(n_thr)]
        )  # integer counts: the same float64 quotients below
        rec = np.where(npig > 0, tp / np.maximum(npig, 1), -1.0)
        return None, rec
    order = stream_order(ev) if order is None else order
    if max_det < MAX_DETS[-1]:
        order = order[ev.rank[order] < max_det]
    # a detection ignored at every threshold adds to neither sum: its entries repeat the previous
    # (recall, precision), or lead with (0, 0), and the envelope read at the recall thresholds
    # is the same without them (pycocotools keeps them; the numbers do not change)
    ignored = ev.ign.all(axis=0)
    order = order[~ignored[order]]
    stream = _Stream(ev, order, n_cats)
    prec = np.full((n_thr, len(rec_thrs), n_cats), -1.0)
    rec = np.full((n_thr, n_cats), -1.0)
    cats = np.flatnonzero(npig)
    if len(cats):
        first = _first_count(npig[cats], rec_thrs)
        for t in range(n_thr):
            rec[t, cats], prec[t, :, cats] = stream.threshold(t, npig, cats, first)
    return prec, rec


def _first_count(npig: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """(K, R) smallest TP count c with `c / npig >= rec_thr` (npig + 1: none). Recall is
    `tp_sum / npig`, monotone in `tp_sum`, so `searchsorted(rc, rec_thrs)` is the first
    position whose TP count reaches this c."""
    return np.stack(
        [np.searchsorted(np.arange(n + 1) / n, rec_thrs, "left") for n in npig.tolist()]
    )


class _Stream:
    """The ordered detection stream of one area range and maxDets, read at its TPs only.

    `_category` computes precision at every detection, but its envelope read at the recall
    thresholds only needs the TPs: precision rises only at a TP (an FP lowers it, an ignored
    detection leaves it), and every read position is a TP (the first reaching a TP count) or
    the stream's start. At a TP, the TP count is its rank among the category's TPs and the FP
    count is the detections up to it minus TPs minus ignored ones (integers, exact), so
    precision is the same division, bit for bit, from the TP and ignored positions alone: a
    few per cent of the detections, instead of a dozen float passes over all of them."""

    def __init__(self, ev: AreaEval, order: np.ndarray, n_cats: int):
        self.ev = ev
        self.inv = np.full(len(ev.score), -1, np.int64)  # stream position of each row (-1: out)
        self.inv[order] = np.arange(len(order))
        self.cat = ev.cat[order]
        self.bounds = np.searchsorted(self.cat, np.arange(n_cats + 1))

    def _positions(self, flags: np.ndarray) -> np.ndarray:
        pos = self.inv[np.flatnonzero(flags)]
        return np.sort(pos[pos >= 0])

    def threshold(
        self, t: int, npig: np.ndarray, cats: np.ndarray, first: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(K,) recall and (K, R) precision of categories `cats` at IoU threshold t."""
        tpos, ipos = self._positions(self.ev.tp[t]), self._positions(self.ev.ign[t])
        tcat = self.cat[tpos]
        tb = np.searchsorted(tcat, np.arange(len(self.bounds)))  # each category's TPs
        tp = np.arange(1, len(tpos) + 1) - tb[tcat]  # TP count at each TP
        start = self.bounds[tcat]
        ign = np.searchsorted(ipos, tpos, "right") - np.searchsorted(ipos, start, "left")
        tp_f = tp.astype(np.float64)
        fp_f = (tpos - start + 1 - tp - ign).astype(np.float64)
        pr = tp_f / (fp_f + tp_f + EPS)
        best = _suffix_max(pr, tcat, len(self.bounds))
        m = tb[cats + 1] - tb[cats]  # TPs per category
        recall = m / npig[cats]
        read = (first <= m[:, None]) & (m[:, None] > 0)
        at = np.minimum(tb[cats][:, None] + np.maximum(first - 1, 0), max(len(pr) - 1, 0))
        q = np.where(read, best[at] if len(pr) else 0.0, 0.0)
        return recall, q


def _suffix_max(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """max(values[i:end of i's group]) for rows sorted by group: one running maximum over
    the reversed rows of (group offset, value rank) integers, exact (ranks keep the order)."""
    if not len(values):
        return values
    uniq, rank = np.unique(values, return_inverse=True)
    key = (n_groups - 1 - group) * len(uniq) + rank  # later groups first, lower offsets
    run = np.maximum.accumulate(key[::-1])[::-1]
    return uniq[run - (n_groups - 1 - group) * len(uniq)]


def coco_summary(pie: PerImageEval) -> tuple[dict[str, float], np.ndarray]:
    """The 12 stats by name and precision[T, R, K] of area all at maxDets 100."""
    prec: dict[str, np.ndarray] = {}
    rec: dict[tuple[str, int], np.ndarray] = {}
    order = stream_order(pie.areas["all"])
    for area in AREA_NAMES:
        for m in MAX_DETS if area == "all" else (MAX_DETS[-1],):
            full = m == MAX_DETS[-1]  # AR1 and AR10 need no precision
            p, r = accumulate_area(pie.areas[area], pie.n_cats, pie.rec_thrs, m, order, full)
            rec[area, m] = r
            if p is not None:
                prec[area] = p
    out = {}
    for stat, (kind, area, max_det, iou) in STATS.items():
        if kind == "p":
            s = prec[area] if iou is None else prec[area][np.where(iou == pie.iou_thrs)[0]]
        else:
            s = rec[area, max_det]
        out[stat] = summarize(s)
    return out, prec["all"]
