"""lvis-api's federated `LVISEval` for bbox, vectorised with the COCO matcher's numpy machinery.

Same rules, same order as lvis-api 0.5.3 (`LVISResults` + `LVISEval.run`) [ARCH-LVIS]:
- each image keeps its top `max_dets` (300) detections by score (a stable sort: file order on
  ties), before anything else;
- a detection whose category is neither in its image's GT nor in the image's
  `neg_category_ids` is not evaluated at all (the federated rule);
- per (image, category): detections by score (stable), GT with ignored ones last; each
  detection in turn takes the free GT of highest IoU >= threshold (pycocotools' greedy, no
  crowd); no per-pair cap;
- an unmatched detection is ignored when its area is outside the range or its category is in
  the image's `not_exhaustive_category_ids`;
- accumulate as COCOeval (101 recall points, right-to-left envelope); AP over the categories with
  GT, per frequency group (r / c / f by the category's `frequency`), per area range, and AR@300.
A detection matched to a GT whose id is 0 counts as unmatched, as in lvis-api (it stores the
matched id and tests it for truth).

Pure numpy; the stats equal lvis-api's to 1e-12 on random federated sets (tests/test_lvis_eval.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from coordbench.errors import DataError
from coordbench.metrics.coco_accumulate import accumulate_area, stream_order, summarize
from coordbench.metrics.coco_match import AREA_RANGES, AreaEval, _positions
from coordbench.metrics.greedy import greedy_by_rank, ranked_pairs

MAX_DETS = 300  # lvis-api Params.max_dets (per image)
FREQUENCIES = ("r", "c", "f")  # lvis-api Params.img_count_lbl
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREAS = ("all", "small", "medium", "large")
# stat -> (precision or recall, area, IoU or None, frequency group or None), as `summarize`
STATS = {
    "AP": ("p", "all", None, None),
    "AP50": ("p", "all", 0.5, None),
    "AP75": ("p", "all", 0.75, None),
    "APs": ("p", "small", None, None),
    "APm": ("p", "medium", None, None),
    "APl": ("p", "large", None, None),
    "APr": ("p", "all", None, 0),
    "APc": ("p", "all", None, 1),
    "APf": ("p", "all", None, 2),
    "AR@300": ("r", "all", None, None),
    "ARs@300": ("r", "small", None, None),
    "ARm@300": ("r", "medium", None, None),
    "ARl@300": ("r", "large", None, None),
}


@dataclass
class LvisDets:
    """Detections as columns, in result-file order (bbox xywh)."""

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


@dataclass
class LvisOutput:
    stats: dict[str, float]
    precision: np.ndarray  # (T, R, K) of area all
    cat_ids: list[int]
    counters: dict[str, int]


def top_per_image(image_pos: np.ndarray, score: np.ndarray, max_dets: int) -> np.ndarray:
    """Rows kept by `LVISResults.limit_dets_per_image`: an image's top `max_dets` by score
    (stable: file order on ties); images at or under the limit keep every row. Returned in
    file order."""
    if max_dets < 0 or not len(score):
        return np.arange(len(score))
    over = np.bincount(image_pos) > max_dets
    if not over.any():  # the usual results file: already capped, nothing to sort
        return np.arange(len(score))
    capped = np.flatnonzero(over[image_pos])
    keep = np.ones(len(score), bool)
    keep[capped[~_top_rows(image_pos[capped], score[capped], max_dets)]] = False
    return np.flatnonzero(keep)


def _top_rows(image_pos: np.ndarray, score: np.ndarray, max_dets: int) -> np.ndarray:
    """Mask of the rows among an image's top `max_dets` by score (stable)."""
    order = np.lexsort((-score, image_pos))  # by image, score desc, file order on ties
    img = image_pos[order]
    first = np.r_[True, img[1:] != img[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(img)), 0))
    mask = np.zeros(len(score), bool)
    mask[order[(np.arange(len(img)) - start) < max_dets]] = True
    return mask


def _id_lists(images: list[dict], key: str, cat_pos: dict[int, int]) -> tuple[np.ndarray, ...]:
    """(image position, category position) of every id in each image's `key` list."""
    ii, kk = [], []
    for i, im in enumerate(images):
        ids = im.get(key)
        if not isinstance(ids, list):
            raise DataError(
                f"image {im.get('id')!r} has no `{key}` list: an LVIS (federated) GT image "
                "needs neg_category_ids and not_exhaustive_category_ids (a COCO file passed as "
                "LVIS?)"
            )
        for c in ids:
            k = cat_pos.get(c)
            if k is None:
                raise DataError(f"image {im.get('id')!r}: {key} names unknown category {c!r}")
            ii.append(i)
            kk.append(k)
    return np.asarray(ii, np.int64), np.asarray(kk, np.int64)


def _known_positions(anns: list[dict], key: str, known: dict[Any, int], what: str) -> np.ndarray:
    """Each annotation's position of `key` in `known`; the first unknown one is named."""
    ids = list(map(dict.get, anns, repeat(key)))
    try:
        return _positions(np.array(ids) if ids else np.zeros(0, np.int64), known)
    except (KeyError, TypeError):
        i = next(i for i, v in enumerate(ids) if isinstance(v, bool) or v not in known)
        raise DataError(
            f"GT annotation {i} (id {anns[i].get('id')!r}) has {key} {ids[i]!r}, not {what} "
            "of the file"
        ) from None


def _ann_ids(anns: list[dict]) -> np.ndarray:
    ids = list(map(dict.get, anns, repeat("id")))
    if set(map(type, ids)) - {int}:
        i = next(i for i, v in enumerate(ids) if type(v) is not int)
        raise DataError(f"GT annotation {i} has id {ids[i]!r}: LVIS annotation ids are integers")
    return np.array(ids, np.int64)


def _det_positions(ids: np.ndarray, known: dict[Any, int], key: str) -> np.ndarray:
    try:
        return _positions(ids, known)
    except KeyError as e:
        raise DataError(f"a detection has {key} {e.args[0]!r}, not in the GT") from None


class LvisTables:
    """GT and the evaluated detections keyed by (category position, image position)."""

    def __init__(self, gt: dict[str, Any], dets: LvisDets, max_dets: int = MAX_DETS):
        images = sorted(gt["images"], key=lambda im: im["id"])
        img_pos = {im["id"]: i for i, im in enumerate(images)}
        cats = sorted(gt["categories"], key=lambda c: c["id"])
        cat_pos = {c["id"]: k for k, c in enumerate(cats)}
        self.cat_ids = [c["id"] for c in cats]
        self.n_img, self.n_cats = len(images), len(cats)
        self.freq_groups = _freq_groups(cats)
        anns = gt["annotations"]
        g_img = _known_positions(anns, "image_id", img_pos, "an image")
        g_cat = _known_positions(anns, "category_id", cat_pos, "a category")
        self.g_key = g_cat * self.n_img + g_img
        self.g_box = np.array(list(map(itemgetter("bbox"), anns)), np.float64).reshape(-1, 4)
        self.g_area = np.fromiter(map(itemgetter("area"), anns), np.float64, len(anns))
        self.g_flag = np.array([bool(a.get("ignore", 0)) for a in anns], bool)
        self.g_id = _ann_ids(anns)
        # the federated lists as (category, image) keys
        neg_i, neg_k = _id_lists(images, "neg_category_ids", cat_pos)
        nel_i, nel_k = _id_lists(images, "not_exhaustive_category_ids", cat_pos)
        evaluated = np.union1d(self.g_key, neg_k * self.n_img + neg_i)
        nel = np.unique(nel_k * self.n_img + nel_i)
        neg = np.unique(neg_k * self.n_img + neg_i)
        # detections: the top 300 of each image, then only the evaluated (image, category) pairs
        d_img = _det_positions(np.asarray(dets.image_id), img_pos, "image_id")
        d_cat = _det_positions(np.asarray(dets.category_id), cat_pos, "category_id")
        score = np.asarray(dets.score, np.float64)
        kept = top_per_image(d_img, score, max_dets)
        key = d_cat[kept] * self.n_img + d_img[kept]
        ev = np.isin(key, evaluated)
        rows = kept[ev]
        self.counters = {
            "dets_total": len(score),
            "dets_over_max_dets": len(score) - len(kept),
            "dets_not_evaluated": int((~ev).sum()),
            "dets_evaluated": len(rows),
        }
        d_key = key[ev]
        d_score = score[rows]
        order = np.lexsort((-d_score, d_key))  # per pair by score; stable: file order on ties
        d_key, rows = d_key[order], rows[order]
        first = np.r_[True, d_key[1:] != d_key[:-1]] if len(d_key) else np.zeros(0, bool)
        n = np.arange(len(d_key))
        self.d_rank = n - np.maximum.accumulate(np.where(first, n, 0)) if len(n) else n
        self.d_key, self.d_score = d_key, score[rows]
        self.d_box = np.asarray(dets.bbox, np.float64).reshape(-1, 4)[rows]
        self.d_area = self.d_box[:, 2] * self.d_box[:, 3]  # LVISResults: area = w * h
        self.d_cat, self.d_img = d_key // self.n_img, d_key % self.n_img
        self.d_nel = np.isin(d_key, nel)
        self.d_neg = np.isin(d_key, neg)

        self._pairs()

    def _pairs(self) -> None:
        """The candidate pairs, IoU once for all area ranges (`greedy.ranked_pairs`: GT by
        (category, image) key in file order, lvis-api's order inside each ignore class)."""
        g_order = np.argsort(self.g_key, kind="stable")
        self.g_key, self.g_box = self.g_key[g_order], self.g_box[g_order]
        self.g_area, self.g_flag = self.g_area[g_order], self.g_flag[g_order]
        self.g_id = self.g_id[g_order]
        lowest = min(IOU_THRS.min(), 1 - 1e-10)
        self.pairs = ranked_pairs(
            self.d_key, self.d_box, self.d_rank, self.g_key, self.g_box, None, lowest
        )

    def area_eval(self, area: str) -> AreaEval:
        lo, hi = AREA_RANGES[area]
        g_ign = self.g_flag | (self.g_area < lo) | (self.g_area > hi)
        thr = np.minimum(IOU_THRS, 1 - 1e-10)
        match, det_ign = greedy_by_rank(self.pairs, len(self.d_key), len(self.g_key), g_ign, thr)
        # lvis-api tests the matched GT *id* for truth: a match to id 0 reads as no match
        matched = (match >= 0) & (self.g_id[np.maximum(match, 0)] != 0)
        self.matched = matched
        out_of_range = (self.d_area < lo) | (self.d_area > hi) | self.d_nel
        det_ign |= ~matched & out_of_range[None, :]
        has, npig = np.unique(self.g_key[~g_ign], return_counts=True)  # (cat, img) keys with GT
        return AreaEval(
            self.d_cat,
            self.d_img,
            self.d_rank,
            self.d_score,
            matched & ~det_ign,
            det_ign,
            has % self.n_img,
            has // self.n_img,
            npig,
        )


def _freq_groups(cats: list[dict[str, Any]]) -> list[np.ndarray]:
    groups: list[list[int]] = [[] for _ in FREQUENCIES]
    for k, c in enumerate(cats):
        f = c.get("frequency")
        if f not in FREQUENCIES:
            raise DataError(
                f"category {c.get('id')!r} ({c.get('name')!r}) has frequency {f!r}; LVIS "
                "categories need `frequency` r, c or f (a COCO file passed as LVIS?)"
            )
        groups[FREQUENCIES.index(f)].append(k)
    return [np.asarray(g, np.int64) for g in groups]


def _upstream_diag(tables: LvisTables, ev: AreaEval) -> None:
    """Upstream's `lvis_diag_*` counters, at IoU 0.5 over all areas: detections matched to a
    GT, unmatched ones of a verified-negative category, unmatched ones ignored as not exhaustive,
    and those not evaluated at all (category neither in the GT nor negative)."""
    unmatched = ~tables.matched[0]
    tables.counters.update(
        matched_verified_positive=int(ev.tp[0].sum()),
        verified_negative_unmatched=int((unmatched & tables.d_neg).sum()),
        ignored_not_exhaustive=int((unmatched & tables.d_nel).sum()),
        ignored_unevaluable=tables.counters["dets_not_evaluated"],
    )


def lvis_evaluate(gt: dict[str, Any], dets: LvisDets, max_dets: int = MAX_DETS) -> LvisOutput:
    """The 13 LVIS stats (lvis-api's names), precision of area all, counters. `max_dets` is
    `LVISResults`' per-image cap (upstream's `lvis_max_dets`); the AR keys keep lvis-api's
    names (`AR@300`: its `Params.max_dets` label, whatever the cap)."""
    tables = LvisTables(gt, dets, max_dets)
    prec: dict[str, np.ndarray] = {}
    rec: dict[str, np.ndarray] = {}
    order = None
    for area in AREAS:
        ev = tables.area_eval(area)
        if order is None:
            order = stream_order(ev)
            _upstream_diag(tables, ev)
        # no per-image cut beyond the one made on loading: max_det above every rank
        p, r = accumulate_area(ev, tables.n_cats, REC_THRS, 1 << 30, order, True)
        prec[area], rec[area] = p, r
    stats = {}
    for name, (kind, area, iou, group) in STATS.items():
        if kind == "p":
            s = prec[area]
            if iou is not None:
                s = s[np.where(iou == IOU_THRS)[0]]
            if group is not None:
                s = s[:, :, tables.freq_groups[group]]
        else:
            s = rec[area]
        stats[name] = summarize(s)
    return LvisOutput(stats, prec["all"], tables.cat_ids, tables.counters)
