"""COCOeval `accumulate` + `summarize` over a multiset of images, from per-image evaluations.

A resample is a count vector `w` over the images (image i taken w[i] times). It stands for
the COCO set in which copy c of image i is a renamed image, ordered by (i, c): the numbers equal
pycocotools on that set (tested). After the stable score sort, copies of one image with tied
scores interleave block-wise: a run of detections with equal score from one image (a "block")
appears w[i] times in a row. Precision is only read at true positives (a false positive never
raises the interpolated envelope), so per resample only the TP positions are expanded:
n = non-ignored detections up to and including a TP, m = its rank among TPs, p = m / (n + eps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coordbench.metrics.coco_accumulate import STATS, summarize
from coordbench.metrics.coco_images import PerImageEval
from coordbench.metrics.coco_match import AreaEval
from coordbench.metrics.ragged import ragged

if TYPE_CHECKING:  # scipy is imported where a resampler is built: a second of start-up
    import scipy.sparse as sp

EPS = np.spacing(1)  # pycocotools: tp / (fp + tp + np.spacing(1))


def _excl(x: np.ndarray) -> np.ndarray:
    """[0, x0, x0+x1, ...]: exclusive prefix sums with the total appended."""
    out = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(x, out=out[1:])
    return out


def tp_count_matrix(ev: AreaEval, n_img: int, n_cats: int, max_det: int) -> sp.csr_matrix:
    """(images, T*K) number of true positives among each image's first `max_det` detections."""
    keep = ev.rank < max_det
    t_idx, d_idx = np.nonzero(ev.tp[:, keep])
    cols = t_idx * n_cats + ev.cat[keep][d_idx]
    shape = (n_img, ev.tp.shape[0] * n_cats)
    import scipy.sparse as sp

    return sp.csr_matrix((np.ones(len(cols)), (ev.img[keep][d_idx], cols)), shape=shape)


class PrecisionStreams:
    """Per-category detection streams of one area range, ready for weighted accumulate.

    Stream: a category's detections in COCO's accumulate order (score desc, then image, then rank).
    Block `blk_*`: a run of detections of one image with one score (copies of the image repeat
    it whole). Segment: (IoU threshold t, category k), id t*K+k. Group `g_*`: the TPs of one
    block at one threshold, with its segment, the block's non-ignored count `g_nl`, its TP count
    `g_cnt`, the first block of its category `g_first` and its place among the blocks holding
    ignored detections at t (`g_iidx`, `g_ifirst` into `ig_blk` / `ig_cnt`). `e_j`: per TP,
    its rank among the block's non-ignored detections.
    """

    def __init__(self, ev: AreaEval, n_cats: int):
        self.n_cats, self.n_thr = n_cats, ev.tp.shape[0]
        order = np.lexsort((ev.rank, ev.img, -ev.score, ev.cat))  # COCO's stable sort, per category
        cat, img, score = ev.cat[order], ev.img[order], ev.score[order]
        new = np.ones(len(order), bool)
        new[1:] = (cat[1:] != cat[:-1]) | (img[1:] != img[:-1]) | (score[1:] != score[:-1])
        blk = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        self.blk_img, blk_cat = img[starts], cat[starts]
        self.blk_len = np.diff(np.append(starts, len(order)))
        first = np.full(n_cats, 0, np.int64)
        present = np.unique(blk_cat)
        first[present] = np.searchsorted(blk_cat, present)
        groups, elems_j, ig_blk, ig_cnt, ig_start = [], [], [], [], 0
        for t in range(self.n_thr):
            tp, ni = ev.tp[t, order], ~ev.ign[t, order]
            cs = np.cumsum(ni)
            j = cs - cs[starts][blk] + ni[starts][blk] - 1  # non-ignored rank within the block
            nl = np.bincount(blk, weights=ni, minlength=len(starts)).astype(np.int64)
            ign_b = np.flatnonzero(self.blk_len - nl)
            tb, cnt = np.unique(blk[tp], return_counts=True)
            g_cat = blk_cat[tb]
            i_idx = ig_start + np.searchsorted(ign_b, tb)
            i_first = ig_start + np.searchsorted(ign_b, first[g_cat])
            groups.append(
                np.stack([tb, t * n_cats + g_cat, nl[tb], cnt, first[g_cat], i_idx, i_first])
            )
            elems_j.append(j[tp])
            ig_blk.append(ign_b)
            ig_cnt.append((self.blk_len - nl)[ign_b])
            ig_start += len(ign_b)
        g = np.concatenate(groups, axis=1) if groups else np.zeros((7, 0), np.int64)
        self.g_blk, self.g_seg, self.g_nl, self.g_cnt, self.g_first, self.g_iidx, self.g_ifirst = g
        self.g_elem0 = _excl(self.g_cnt)[:-1]
        self.e_j = np.concatenate(elems_j) if elems_j else np.zeros(0, np.int64)
        self.ig_blk = np.concatenate(ig_blk) if ig_blk else np.zeros(0, np.int64)
        self.ig_cnt = np.concatenate(ig_cnt) if ig_cnt else np.zeros(0, np.int64)
        n_seg = self.n_thr * n_cats  # groups are sorted by segment t*K+k
        self.seg_begin = np.searchsorted(self.g_seg, np.arange(n_seg), "left")
        self.seg_end = np.searchsorted(self.g_seg, np.arange(n_seg), "right")
        self.g_segfirst = self.seg_begin[self.g_seg]
        self.simple = bool(
            np.all(self.blk_len == 1) and not len(self.ig_blk) and np.all(self.g_cnt == 1)
        )

    def tp_precisions(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(precision at every expanded TP in segment order, TP count per segment t*K+k)."""
        wb = w[self.blk_img]
        a_ext = _excl(wb if self.simple else wb * self.blk_len)
        before = a_ext[self.g_blk] - a_ext[self.g_first]
        if len(self.ig_blk):
            i_ext = _excl(wb[self.ig_blk] * self.ig_cnt)
            before -= i_ext[self.g_iidx] - i_ext[self.g_ifirst]
        reps = wb[self.g_blk]
        cs = _excl(reps if self.simple else reps * self.g_cnt)  # expanded position of each group
        seg_total = cs[self.seg_end] - cs[self.seg_begin]
        seg_start = cs[self.g_segfirst]
        if self.simple:  # one detection per block and one TP per group: copies follow each other
            k = np.arange(cs[-1]) + 1
            n = np.repeat(before - cs[:-1], reps) + k
            return (k - np.repeat(seg_start, reps)) / (n + EPS), seg_total
        gi, copy = ragged(reps)  # block-wise tiling: copy c of a block after copy c-1
        owner, off = ragged(self.g_cnt[gi])
        gi_o = gi[owner]
        n = before[gi_o] + copy[owner] * self.g_nl[gi_o] + self.e_j[self.g_elem0[gi_o] + off] + 1
        m = np.arange(len(n)) - seg_start[gi_o] + 1
        return m / (n + EPS), seg_total


def recall_points(npig: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """(S, R) smallest TP count m >= 1 with m / npig >= threshold, as searchsorted(rc, thr)."""
    npig_f = npig.astype(np.float64)[:, None]
    c0 = np.ceil(rec_thrs[None, :] * npig_f).astype(np.int64)
    cand = c0[..., None] + np.array([-1, 0, 1])
    ok = (cand >= 1) & (cand / npig_f[..., None] >= rec_thrs[None, :, None])
    return np.take_along_axis(cand, ok.argmax(axis=2)[..., None], axis=2)[..., 0]


def interpolated(
    pr: np.ndarray, seg_total: np.ndarray, segs: np.ndarray, npig: np.ndarray, rec_thrs: np.ndarray
) -> np.ndarray:
    """(S, R) COCO interpolated precision of the given segments (0 where recall is not reached)."""
    values, inverse = np.unique(npig, return_inverse=True)  # few distinct GT counts (one per class)
    m_r = recall_points(values, rec_thrs)[inverse]
    total = seg_total[segs][:, None]
    reached = m_r <= total
    start = _excl(seg_total)[segs][:, None]
    idx = np.concatenate([start + m_r - 1, start + total], axis=1)  # last column: segment end
    mask = np.concatenate([reached, (total > 0)], axis=1)
    flat = idx[mask]
    q = np.zeros(mask.shape)
    if len(flat):
        q[mask] = np.maximum.reduceat(np.append(pr, 0.0), flat)  # range maxima up to the next point
    q = q[:, :-1] * reached
    return np.maximum.accumulate(q[:, ::-1], axis=1)[:, ::-1]  # envelope: max over later points


def precision_table(
    streams: PrecisionStreams, w: np.ndarray, npig_k: np.ndarray, rec_thrs: np.ndarray
) -> np.ndarray:
    """(T, R, K) precision at maxDets 100 as pycocotools' `eval['precision']` (-1: no GT)."""
    n_thr, n_cats = streams.n_thr, streams.n_cats
    pr, seg_total = streams.tp_precisions(w)
    npig_seg = np.tile(npig_k, n_thr)
    segs = np.flatnonzero(npig_seg > 0)
    out = np.full((n_thr * n_cats, len(rec_thrs)), -1.0)
    out[segs] = interpolated(pr, seg_total, segs, npig_seg[segs], rec_thrs)
    return out.reshape(n_thr, n_cats, len(rec_thrs)).transpose(0, 2, 1)


def _times(w: np.ndarray, mat: sp.csr_matrix) -> np.ndarray:
    """(B, C) = W (B, N) @ mat (N, C), exact for integer counts."""
    return np.asarray((mat.T @ w.T.astype(np.float64)).T)


class CocoResampler:
    """The 12 COCO stats (or a subset) for many image count vectors at once."""

    def __init__(self, pie: PerImageEval, stats: tuple[str, ...]):
        unknown = [s for s in stats if s not in STATS]
        if unknown:
            raise ValueError(f"unknown COCO stats {unknown}; expected some of {tuple(STATS)}")
        self.pie, self.stats = pie, stats
        import scipy.sparse as sp

        n, k = pie.n_images, pie.n_cats
        self.streams, self.npig, self.tpc = {}, {}, {}
        for stat in stats:
            kind, area, max_det, _ = STATS[stat]
            ev = pie.areas[area]
            if area not in self.npig:
                self.npig[area] = sp.csr_matrix(
                    (ev.npig.astype(float), (ev.npig_img, ev.npig_cat)), shape=(n, k)
                )
            if kind == "p" and area not in self.streams:
                self.streams[area] = PrecisionStreams(ev, k)
            if kind == "r":
                self.tpc[area, max_det] = tp_count_matrix(ev, n, k, max_det)
        any_area = next(iter(pie.areas.values()))
        self.has_det = sp.csr_matrix(
            np.bincount(any_area.img, minlength=n)[:, None] > 0, dtype=float
        )

    def _recall(self, tpc: np.ndarray, npig: np.ndarray) -> np.ndarray:
        t = len(self.pie.iou_thrs)
        rc = np.full((t, self.pie.n_cats), -1.0)
        npig_t = np.broadcast_to(npig, rc.shape)
        ok = npig_t > 0
        rc[ok] = tpc.reshape(rc.shape)[ok] / npig_t[ok]
        return rc

    def precision(self, area: str, w: np.ndarray) -> np.ndarray:
        """(T, R, K) precision table of one count vector (area must have been requested)."""
        npig = _times(np.atleast_2d(w), self.npig[area])[0]
        return precision_table(self.streams[area], w, npig, self.pie.rec_thrs)

    def evaluate(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Stat -> (B,) values for count vectors `w` (B, N); 0.0 for a set without detections."""
        w = np.atleast_2d(np.asarray(w, dtype=np.int64))
        npig = {a: _times(w, m) for a, m in self.npig.items()}
        tpc = {key: _times(w, m) for key, m in self.tpc.items()}
        no_det = _times(w, self.has_det)[:, 0] == 0
        thrs = self.pie.iou_thrs
        out = {s: np.zeros(len(w)) for s in self.stats}
        for b in range(len(w)):
            if no_det[b]:
                continue  # upstream rule: no detection -> every stat 0.0
            prec = {
                a: precision_table(st, w[b], npig[a][b], self.pie.rec_thrs)
                for a, st in self.streams.items()
            }
            for stat in self.stats:
                kind, area, max_det, iou = STATS[stat]
                if kind == "p":
                    s = prec[area] if iou is None else prec[area][np.where(iou == thrs)[0]]
                else:
                    s = self._recall(tpc[area, max_det][b], npig[area][b])
                out[stat][b] = summarize(s)
        return out
