"""pycocotools' `evaluateImg` for bbox, vectorised over all (image, category) pairs with numpy.

Same rules, same order: per (image, category) detections sorted by score (stable, input order on
ties) and cut at maxDets[-1] = 100; GT sorted with ignored ones last (stable); each detection in
turn takes the free GT with the highest IoU >= threshold (the last one on exact ties), a
non-ignored GT before an ignored one; unmatched detections outside the area range are ignored.
Detections of one rank are matched together across all pairs and thresholds, ranks in order.
IoU is pycocotools' `bbIou` (xywh, no +1), as `geometry.iou_pairs_xywh`. Crowd GT as
pycocotools: ignored, IoU over the detection's area only, and never used up (several detections
may match one crowd region).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from coordbench.metrics.coco_json import Scratch, columns_supported, results_body
from coordbench.metrics.greedy import RankedPairs, greedy_by_rank, ranked_pairs

AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}  # (pycocotools Params.areaRng)
MAX_DETS = 100  # pycocotools Params.maxDets[-1]


@dataclass
class AreaEval:
    """All evaluated detections of one area range, one row each, by (category, image, rank)."""

    cat: np.ndarray  # (n,) category position k (in sorted category ids)
    img: np.ndarray  # (n,) image position (in sorted image ids)
    rank: np.ndarray  # (n,) rank within its (image, category) list, by score (stable)
    score: np.ndarray  # (n,) float64
    tp: np.ndarray  # (T, n) bool: matched and not ignored
    ign: np.ndarray  # (T, n) bool: dtIgnore
    npig_img: np.ndarray  # (m,) image position of each (image, category) with non-ignored GT
    npig_cat: np.ndarray  # (m,) its category position
    npig: np.ndarray  # (m,) its number of non-ignored GT


@dataclass
class CocoDets:
    """COCO detections as columns (the `coco_preds` list of dicts, without a dict per box)."""

    image_id: np.ndarray  # (n,)
    category_id: np.ndarray  # (n,)
    bbox: np.ndarray  # (n, 4) xywh (int64 for pixel ints: written as ints, as upstream)
    score: np.ndarray  # (n,) float64

    def __len__(self) -> int:
        return len(self.score)

    def dicts(self) -> list[dict[str, Any]]:
        """The COCO results list (`coco_preds.json`, `COCO.loadRes` input)."""
        return [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(
                self.image_id.tolist(),
                self.category_id.tolist(),
                self.bbox.tolist(),
                self.score.tolist(),
                strict=True,
            )
        ]

    def rows(self, lo: int, hi: int) -> CocoDets:
        """Rows lo:hi (views, no copy)."""
        sl = slice(lo, hi)
        return CocoDets(self.image_id[sl], self.category_id[sl], self.bbox[sl], self.score[sl])

    @classmethod
    def from_dicts(cls, preds: list[dict[str, Any]]) -> CocoDets:
        """Columns of a results list, one C-level pass per key (no Python loop per box)."""
        n = len(preds)
        return cls(
            image_id=np.array(list(map(itemgetter("image_id"), preds))),
            category_id=np.array(list(map(itemgetter("category_id"), preds))),
            bbox=np.array(list(map(itemgetter("bbox"), preds)), np.float64).reshape(n, 4),
            score=np.fromiter(map(itemgetter("score"), preds), np.float64, n),
        )


class CocoResults(Sequence):
    """The COCO results list of `dets` without holding a dict per detection [ARCH-EVAL-MEMORY].

    A 1 M-detection list of dicts is about 400 MB; this builds the dicts a caller indexes or
    iterates (a bounded chunk at a time) and writes `coco_preds.json` chunk by chunk, byte
    for byte what `orjson.dumps` of the whole list writes."""

    CHUNK = 65_536
    JSON_CHUNK = 8_192  # rows per coco_preds.json piece from columns (~0.7 MB, cache-sized)

    def __init__(self, dets: CocoDets):
        self.dets = dets

    def __len__(self) -> int:
        return len(self.dets)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            lo, hi, step = i.indices(len(self))
            if step == 1:
                return self.dets.rows(lo, max(lo, hi)).dicts()
            return [self[j] for j in range(lo, hi, step)]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("CocoResults index out of range")
        return self.dets.rows(i % n, i % n + 1).dicts()[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for lo in range(0, len(self), self.CHUNK):
            yield from self.dets.rows(lo, lo + self.CHUNK).dicts()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CocoResults | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def json_chunks(self) -> Iterator[bytes]:
        """`orjson.dumps(list(self))` in pieces (bytes-like; the results hold numbers only):
        from the columns directly (`coco_json`) when orjson takes them as arrays."""
        import orjson

        d, scratch = self.dets, Scratch()
        fast = columns_supported(d.image_id, d.category_id, d.bbox, d.score)
        step = self.JSON_CHUNK if fast else self.CHUNK
        yield b"["
        for lo in range(0, len(self), step):
            rows = d.rows(lo, lo + step)
            if lo:
                yield b","
            if fast:
                yield results_body(rows.image_id, rows.category_id, rows.bbox, rows.score, scratch)
            else:
                yield orjson.dumps(rows.dicts())[1:-1]
        yield b"]"


def _positions(ids: np.ndarray, known: dict[Any, int]) -> np.ndarray:
    """Position of each id in `known`, whose positions are its keys' sorted order (a KeyError
    names an unknown id, as a dict lookup would)."""
    if not len(ids):
        return np.zeros(0, np.int64)
    keys = np.array(list(known))
    if keys.dtype.kind != "i" or ids.dtype.kind != "i" or np.any(keys[1:] <= keys[:-1]):
        return np.array([known[u] for u in ids.tolist()], np.int64)  # ids that are not ints
    pos = np.minimum(np.searchsorted(keys, ids), max(len(keys) - 1, 0))
    bad = np.flatnonzero(keys[pos] != ids) if len(keys) else np.arange(len(ids))
    if len(bad):
        raise KeyError(ids[bad[0]].item())
    return pos


def by_key_then_score(key: np.ndarray, score: np.ndarray) -> np.ndarray:
    """`np.lexsort((-score, key))`: by key, score descending, input order on ties. One stable
    sort of the scores, then one sort of the unique integers key * n + score position (a
    quicksort suffices for unique keys): a third less time than lexsort at 1 M rows."""
    n = len(key)
    if not n or key.min() < 0 or int(key.max()) >= (1 << 62) // n:
        return np.lexsort((-score, key))
    by_score = np.argsort(-score, kind="stable")
    pos = np.empty(n, np.int64)
    pos[by_score] = np.arange(n)
    return np.argsort(key * n + pos)


class CocoTables:
    """GT and detections as arrays keyed by (category position, image position)."""

    def __init__(self, coco_gt: dict[str, Any], coco_preds: list[dict[str, Any]] | CocoDets):
        img_pos = {im: i for i, im in enumerate(sorted({im["id"] for im in coco_gt["images"]}))}
        cat_pos = {c: k for k, c in enumerate(sorted({c["id"] for c in coco_gt["categories"]}))}
        self.n_img, self.n_cats = len(img_pos), len(cat_pos)
        anns = coco_gt["annotations"]
        self.g_key = np.array(
            [cat_pos[a["category_id"]] * self.n_img + img_pos[a["image_id"]] for a in anns],
            np.int64,
        )
        self.g_box = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        self.g_area = np.array([a["area"] for a in anns], np.float64)
        self.g_crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        # GT by key, file order within a key: the order of each ignore class (greedy.py)
        g_order = np.argsort(self.g_key, kind="stable")
        self.g_key, self.g_box = self.g_key[g_order], self.g_box[g_order]
        self.g_area, self.g_crowd = self.g_area[g_order], self.g_crowd[g_order]
        self._pairs: tuple[float, RankedPairs] | None = None
        self._cat_img: tuple[np.ndarray, np.ndarray] | None = None
        if isinstance(coco_preds, CocoResults):
            coco_preds = coco_preds.dets
        dets = coco_preds if isinstance(coco_preds, CocoDets) else CocoDets.from_dicts(coco_preds)
        d_key = _positions(dets.category_id, cat_pos) * self.n_img + _positions(
            dets.image_id, img_pos
        )
        d_box = np.asarray(dets.bbox, np.float64).reshape(-1, 4)
        d_score = np.asarray(dets.score, np.float64)
        order = by_key_then_score(d_key, d_score)  # per pair by score, input order on ties
        key = d_key[order]
        first = np.ones(len(key), bool)
        first[1:] = key[1:] != key[:-1]
        rank = np.arange(len(key)) - np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))
        keep = order[rank < MAX_DETS]
        self.d_key, self.d_box, self.d_score = d_key[keep], d_box[keep], d_score[keep]
        self.d_rank = rank[rank < MAX_DETS]
        self.d_area = self.d_box[:, 2] * self.d_box[:, 3]  # loadRes: area = w * h

    def _ranked_pairs(self, lowest: float) -> RankedPairs:
        """The candidate pairs of IoU >= `lowest`, built once for every area range."""
        if self._pairs is None or self._pairs[0] > lowest:
            pairs = ranked_pairs(
                self.d_key, self.d_box, self.d_rank, self.g_key, self.g_box, self.g_crowd, lowest
            )
            self._pairs = (lowest, pairs)
        return self._pairs[1]

    def area_eval(self, area: str, iou_thrs: np.ndarray) -> AreaEval:
        lo, hi = AREA_RANGES[area]
        g_ign = (self.g_area < lo) | (self.g_area > hi) | self.g_crowd
        thr = np.minimum(iou_thrs, 1 - 1e-10)  # pycocotools caps the threshold
        pairs = self._ranked_pairs(float(thr.min()))
        crowd = self.g_crowd if self.g_crowd.any() else None
        match, det_ign = greedy_by_rank(pairs, len(self.d_key), len(self.g_key), g_ign, thr, crowd)
        out_of_range = (self.d_area < lo) | (self.d_area > hi)
        det_ign |= (match < 0) & out_of_range[None, :]
        npig = np.bincount(self.g_key[~g_ign], minlength=self.n_cats * self.n_img)
        has = np.flatnonzero(npig)
        if self._cat_img is None:  # one pair of arrays shared by every range's AreaEval
            self._cat_img = (self.d_key // self.n_img, self.d_key % self.n_img)
        return AreaEval(
            *self._cat_img,
            self.d_rank,
            self.d_score,
            (match >= 0) & ~det_ign,
            det_ign,
            has % self.n_img,
            has // self.n_img,
            npig[has],
        )
