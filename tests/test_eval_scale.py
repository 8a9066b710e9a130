"""Issue 26's fast paths against the operations they replace (hand cases and numpy's own)."""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.metrics.coco_accumulate import (
    EPS,
    accumulate_area,
    by_group_then_score,
    stream_order,
)
from coordbench.metrics.coco_match import AreaEval, by_key_then_score


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 50_000])
def test_two_stable_sorts_equal_lexsort(n: int) -> None:
    rng = np.random.default_rng(n)
    group = rng.integers(0, 80, n)
    for score in (rng.random(n), rng.choice([0.0, -0.0, 0.25, 0.5, 1.0], n)):  # ties, -0.0
        assert np.array_equal(by_group_then_score(group, score), np.lexsort((-score, group)))


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 50_000])
def test_composite_key_sort_equals_lexsort(n: int) -> None:
    rng = np.random.default_rng(n)
    key = rng.integers(0, 800_000, n)
    for score in (rng.random(n), rng.choice([0.0, -0.0, 0.25, 0.5, 1.0], n)):
        assert np.array_equal(by_key_then_score(key, score), np.lexsort((-score, key)))
    big = rng.integers(0, 1 << 62, n)  # key * n would overflow: lexsort itself
    assert np.array_equal(by_key_then_score(big, score), np.lexsort((-score, big)))


def test_groups_past_16_bits_take_lexsort() -> None:
    rng = np.random.default_rng(3)
    group, score = rng.integers(0, 70_000, 5000), rng.random(5000)
    assert np.array_equal(by_group_then_score(group, score), np.lexsort((-score, group)))
    group[0] = -1
    assert np.array_equal(by_group_then_score(group, score), np.lexsort((-score, group)))


def test_ties_keep_input_order() -> None:
    group = np.array([1, 0, 1, 0, 1])
    score = np.array([0.5, 0.5, 0.9, 0.5, 0.5])
    assert by_group_then_score(group, score).tolist() == [1, 3, 2, 0, 4]


def _category_loop(ev, idx, npig, rec_thrs):
    """The per-category accumulate it replaced (pycocotools' operations, every detection)."""
    n_thr = ev.tp.shape[0]
    if not len(idx):
        return np.zeros(n_thr), np.zeros((n_thr, len(rec_thrs)))
    tp, ign = ev.tp[:, idx], ev.ign[:, idx]
    tp_sum = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_sum = np.cumsum(~(tp | ign), axis=1, dtype=np.float64)
    rc = tp_sum / npig
    pr = tp_sum / (fp_sum + tp_sum + EPS)
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    q = np.zeros((n_thr, len(rec_thrs)))
    for t in range(n_thr):
        inds = np.searchsorted(rc[t], rec_thrs, side="left")
        ok = inds < len(idx)
        q[t, ok] = pr[t, inds[ok]]
    return rc[:, -1], q


def _loop_accumulate(ev, n_cats, rec_thrs, max_det):
    npig = np.bincount(ev.npig_cat, weights=ev.npig, minlength=n_cats).astype(np.int64)
    order = stream_order(ev)
    if max_det < 100:  # the matcher already cut each list at 100 (LVIS passes no cut)
        order = order[ev.rank[order] < max_det]
    order = order[~ev.ign.all(axis=0)[order]]
    bounds = np.searchsorted(ev.cat[order], np.arange(n_cats + 1))
    prec = np.full((ev.tp.shape[0], len(rec_thrs), n_cats), -1.0)
    rec = np.full((ev.tp.shape[0], n_cats), -1.0)
    for k in np.flatnonzero(npig):
        rec[:, k], prec[:, :, k] = _category_loop(
            ev, order[bounds[k] : bounds[k + 1]], int(npig[k]), rec_thrs
        )
    return prec, rec


def _random_area_eval(rng, n_cats: int, n_img: int, n_det: int) -> AreaEval:
    key = np.sort(rng.integers(0, n_cats * n_img, n_det))
    first = np.r_[True, key[1:] != key[:-1]]
    idx = np.arange(n_det)
    rank = idx - np.maximum.accumulate(np.where(first, idx, 0))
    score = rng.choice([0.1, 0.5, 0.5, 0.9], n_det) if n_det % 2 else rng.random(n_det)
    ign = rng.random((10, n_det)) < rng.choice([0.0, 0.2, 0.6])
    tp = (rng.random((10, n_det)) < 0.4) & ~ign
    tp[5:] &= tp[4]  # matches thin out as the threshold rises
    has = rng.choice(n_cats * n_img, max(1, n_cats * n_img // 3), replace=False)
    return AreaEval(
        key // n_img,
        key % n_img,
        rank,
        score,
        tp,
        ign,
        has % n_img,
        has // n_img,
        rng.integers(1, 9, len(has)),
    )


@pytest.mark.parametrize("seed", range(12))
def test_accumulate_at_tps_equals_the_per_category_loop(seed: int) -> None:
    """Bit-identical precision and recall (ties, ignored rows, categories without GT or
    without detections, maxDets cuts), against the every-detection loop."""
    rng = np.random.default_rng(seed)
    ev = _random_area_eval(
        rng, int(rng.integers(1, 12)), int(rng.integers(1, 30)), int(rng.integers(0, 3000))
    )
    rec_thrs = np.linspace(0.0, 1.00, 101)
    for max_det in (1, 10, 100, 1 << 30):
        want = _loop_accumulate(ev, int(ev.cat.max(initial=0)) + 3, rec_thrs, max_det)
        got = accumulate_area(ev, int(ev.cat.max(initial=0)) + 3, rec_thrs, max_det)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        recall_only = accumulate_area(
            ev, int(ev.cat.max(initial=0)) + 3, rec_thrs, max_det, precision=False
        )  # AR1 / AR10: TP counts, no order
        if max_det < 100:  # the maxDets it serves (these random lists run past 100)
            assert recall_only[0] is None and np.array_equal(recall_only[1], want[1])


def _baseline_by_scoring(images, options, semantic):
    """The oracle: the real scorer on the images with their predictions removed."""
    import dataclasses

    from coordbench.metrics.detection import score_images
    from coordbench.metrics.diagnostics import BASELINE_KEYS
    from coordbench.metrics.ingest import EvalImage, new_counters

    empty = [EvalImage(i.index, i.file_name, i.width, i.height, gts=i.gts) for i in images]
    thrs = [t for t in options.f1_iou_thrs if abs(t - 0.5) < 1e-9]
    opts = dataclasses.replace(options, f1_iou_thrs=tuple(thrs or options.f1_iou_thrs))
    m = score_images(empty, new_counters(), opts, semantic).metrics
    return {k: m[k] for k in BASELINE_KEYS if k in m}


def _images(rng, n: int, gt_per_image: tuple[int, int]):
    from coordbench.metrics.ingest import new_counters, prepare_images

    def box() -> dict:
        x, y = int(rng.integers(0, 80)), int(rng.integers(0, 60))
        w, h = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        return {
            "type": "bbox_2d",
            "points": [x, y, x + w, y + h],
            "desc": str(rng.choice(["a", "b"])),
        }

    recs = [
        {
            "image": f"{i}.jpg",
            "width": 128,
            "height": 96,
            "gt": [box() for _ in range(int(rng.integers(*gt_per_image)))],
            "pred": [{**box(), "score": 0.5}] if i % 3 else [],
        }
        for i in range(n)
    ]
    return prepare_images(recs, new_counters())


@pytest.mark.parametrize("thrs", [(0.5, 0.3), (0.3,), (0.504, 0.7), (0.5,), (0.5000000001, 0.5)])
@pytest.mark.parametrize(
    "shape", [(0, (0, 1)), (1, (0, 1)), (9, (0, 3)), (40, (1, 5)), (25, (0, 1))]
)
def test_predict_nothing_baseline_equals_the_scorer(thrs, shape) -> None:
    from coordbench.metrics.diagnostics import baseline_nothing
    from coordbench.metrics.result import EvalOptions
    from coordbench.metrics.semantic import Semantic

    n, gts = shape
    images = _images(np.random.default_rng(n + len(thrs)), n, gts)
    options = EvalOptions(f1_iou_thrs=thrs)
    semantic = Semantic(options.semantic_model, None)
    want = _baseline_by_scoring(images, options, semantic)
    got = baseline_nothing(images, options, semantic)
    assert got == want and list(got) == list(want)
    assert all(type(v) is float for v in got.values())
