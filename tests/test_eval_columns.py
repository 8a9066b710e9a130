"""The columnar evaluation ([ARCH-EVAL-SPEED]) against the object-by-object reference.

Oracles: the general per-object ingest path (the fast path switched off) and the sequential
per-image greedy (`f1.greedy_match`, itself pinned by hand-computed cases in test_metrics_f1).
"""

from __future__ import annotations

import gc
import math

import numpy as np
import orjson
import pytest

from coordbench.metrics import ingest
from coordbench.metrics.coco_match import CocoDets, CocoTables
from coordbench.metrics.f1 import greedy_match
from coordbench.metrics.f1_match import ROUNDS, greedy_pairs
from coordbench.metrics.gcpause import gc_paused
from coordbench.metrics.result import EvalOptions
from coordbench.metrics.scoring import evaluate_records

NAMES = ["cat", "dog", "person", "Cat ", "traffic_light", ""]


def _pred(rng: np.random.Generator, w: int, h: int) -> object:
    """A prediction, usually well-formed, sometimes in one of the shapes the fast path declines."""
    x1, y1 = int(rng.integers(-5, w)), int(rng.integers(-5, h))
    pts = [x1, y1, x1 + int(rng.integers(-3, 60)), y1 + int(rng.integers(-3, 60))]
    obj = {"type": "bbox_2d", "points": pts, "desc": str(rng.choice(NAMES))}
    obj["score"] = float(rng.choice([0.5, 0.25, rng.random()]))  # ties on purpose
    odd = rng.random()
    if odd < 0.02:
        obj["points"] = [float(v) + 0.4 for v in pts]
    elif odd < 0.03:
        obj["points"] = [True, 1, 5, 9]
    elif odd < 0.04:
        obj = {"type": "poly", "points": [x1, y1, x1 + 30, y1, x1 + 30, y1 + 30], "desc": "cat"}
        obj["score"] = 0.7
    elif odd < 0.05:
        obj["desc"] = 7
    elif odd < 0.06:
        del obj["score"]
        obj["desc"] = "no such class at all"  # dropped unmapped, so no score is needed
    elif odd < 0.07:
        obj = "not an object"
    elif odd < 0.08:
        obj["points"] = [2**70, 0, 5, 5]
    return obj


def _records(seed: int, n: int = 40) -> list[dict]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        w, h = int(rng.integers(64, 200)), int(rng.integers(64, 200))
        gt = []
        for _ in range(int(rng.integers(0, 6))):
            x, y = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
            pts = [x, y, x + int(rng.integers(4, 50)), y + int(rng.integers(4, 50))]
            odd = rng.random()
            if odd < 0.1:
                pts = [pts[2], pts[3], pts[0], pts[1]]  # reversed: a GT box is the extent
            elif odd < 0.15:
                pts = [float(v) for v in pts]
            elif odd < 0.2:
                pts = [pts[0], pts[1], pts[0], pts[3]]  # degenerate
            elif odd < 0.25:
                pts = [-20, pts[1], w + 40, pts[3]]  # clamped
            gt.append({"type": "bbox_2d", "points": pts, "desc": str(rng.choice(NAMES[:5]))})
        pred = [_pred(rng, w, h) for _ in range(int(rng.integers(0, 30)))]
        for g in gt[:2]:  # near copies, so the matchers have work to do
            pred.append({**g, "score": 0.9})
        rec = {"image": f"im{i}.jpg", "width": w, "height": h, "gt": gt, "pred": pred}
        rec |= {"pred_score_source": "test", "pred_score_version": 1}
        recs.append(rec)
    return recs


class _RandomEncoder:
    """Encoder stub: seeded random unit vectors (the same for both paths)."""

    def __call__(self, texts):
        rng = np.random.default_rng(len(texts))
        v = rng.normal(size=(len(texts), 8))
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _object_path_only(monkeypatch) -> None:
    """Every shortcut off: each GT and prediction through the general per-object checks."""
    monkeypatch.setattr(ingest, "_columns", lambda answers, sizes: None)
    monkeypatch.setattr(ingest, "_fast_gt", lambda obj, w, h: None)
    monkeypatch.setattr(ingest, "_fast_pred", lambda obj, w, h: None)


def _strip(doc):
    return orjson.loads(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_columnar_evaluation_equals_the_object_path(seed, monkeypatch):
    recs = _records(seed)
    opts = EvalOptions()
    fast = evaluate_records(recs, opts, encoder=_RandomEncoder())
    _object_path_only(monkeypatch)
    slow = evaluate_records(recs, opts, encoder=_RandomEncoder())
    assert fast.counters == slow.counters
    assert fast.coco_preds == slow.coco_preds
    assert fast.matches == slow.matches
    assert fast.per_image == slow.per_image
    assert _strip(fast.diagnostics) == _strip(slow.diagnostics)
    assert _strip(fast.calibration) == _strip(slow.calibration)
    for k, v in slow.metrics.items():
        assert fast.metrics[k] == v or (math.isnan(v) and math.isnan(fast.metrics[k])), k


def test_fast_path_keeps_the_object_path_dicts_and_invalid_entries(monkeypatch):
    recs = _records(5, n=60)
    c_fast, c_slow = ingest.new_counters(), ingest.new_counters()
    fast = ingest.prepare_images(recs, c_fast)
    _object_path_only(monkeypatch)
    slow = ingest.prepare_images(recs, c_slow)
    assert c_fast == c_slow
    assert sum(im.cols is not None for im in fast) >= 5  # the fast path did serve answers
    for a, b in zip(fast, slow, strict=True):
        assert a.n_preds == b.n_preds
        assert a.preds == b.preds  # built on demand from the columns
        assert a.invalid_pred == b.invalid_pred and a.gts == b.gts


def test_a_missing_score_key_stays_missing_in_the_dicts():
    rec = {"image": "a.jpg", "width": 50, "height": 50, "gt": []}
    rec["pred"] = [
        {"type": "bbox_2d", "points": [1, 1, 9, 9], "desc": "a"},
        {"type": "bbox_2d", "points": [2, 2, 9, 9], "desc": "a", "score": None},
    ]
    img = ingest.prepare_image(rec, 0, ingest.new_counters())
    assert img.cols is not None
    assert "score" not in img.preds[0] and img.preds[1]["score"] is None


def _random_pairs(rng, n_img, n_pred, n_gt, levels):
    img, pred, gt, iou = [], [], [], []
    for i in range(n_img):
        for p in range(n_pred):
            for g in range(n_gt):
                if rng.random() < 0.6:
                    img.append(i)
                    pred.append(i * 1000 + p)
                    gt.append(i * 1000 + g)
                    iou.append(float(rng.choice(levels)))
    return (np.array(x) for x in (img, pred, gt, iou))


def _sequential(img, pred, gt, iou):
    out = []
    for i in np.unique(img):
        m = img == i
        ps, gs = np.unique(pred[m]), np.unique(gt[m])
        mat = np.zeros((len(ps), len(gs)))
        mat[np.searchsorted(ps, pred[m]), np.searchsorted(gs, gt[m])] = iou[m]
        out += [(int(ps[p]), int(gs[g]), v) for p, g, v in greedy_match(mat, 1e-9)]
    return out


@pytest.mark.parametrize("levels", [[0.5, 0.6, 0.7], list(np.linspace(0.3, 1, 50))])
def test_greedy_rounds_equal_the_sequential_greedy(levels):
    rng = np.random.default_rng(len(levels))
    img, pred, gt, iou = _random_pairs(rng, 30, 9, 7, levels)
    got = greedy_pairs(img, pred, gt, iou)
    mine = [(int(pred[k]), int(gt[k]), float(iou[k])) for k in got]
    assert mine == _sequential(img, pred, gt, iou)


def test_a_chain_longer_than_the_rounds_is_finished_sequentially():
    # IoU falls along p0-g0, p1-g0, p1-g1, p2-g1, ...: each round can settle only one link
    n = 4 * ROUNDS
    pred = np.r_[np.arange(n), np.arange(1, n)]
    gt = np.r_[np.arange(n), np.arange(n - 1)]
    iou = np.r_[0.99 - 0.002 * 2 * np.arange(n), 0.99 - 0.002 * (2 * np.arange(1, n) - 1)]
    img = np.zeros(len(pred), np.int64)
    got = greedy_pairs(img, pred, gt, iou)
    mine = [(int(pred[k]), int(gt[k]), float(iou[k])) for k in got]
    assert mine == _sequential(img, pred, gt, iou)
    assert [(p, g) for p, g, _ in mine] == [(k, k) for k in range(n)]


def test_coco_tables_refuse_an_unknown_id_and_take_non_int_ids():
    gt = {
        "images": [{"id": 3}, {"id": 7}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "bbox": [0, 0, 5, 5],
                "area": 25.0,
                "iscrowd": 0,
            }
        ],
    }
    det = {"image_id": 5, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    with pytest.raises(KeyError):
        CocoTables(gt, [det])
    tables = CocoTables(gt, [{**det, "image_id": 7.0}])  # float ids compare as the dict does
    assert tables.d_key.tolist() == [1]
    dets = CocoDets.from_dicts([{**det, "image_id": 7}])
    assert CocoTables(gt, dets).d_key.tolist() == [1]


def test_gc_paused_restores_the_previous_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError
    assert gc.isenabled()


@pytest.mark.parametrize("thr", [0.05, 0.3, 0.5, 0.75])
def test_candidate_pairs_window_finds_every_overlapping_pair(thr):
    """Every pair at IoU >= thr, including pairs where the x-overlap bound is tight (equal
    heights: IoU == x overlap / max width exactly, at the threshold itself)."""
    from coordbench.geometry import iou_matrix
    from coordbench.metrics.f1_match import candidate_pairs

    rng = np.random.default_rng(3)
    n_img, per_p, per_g = 5, 60, 40

    def boxes(n):
        xy = rng.integers(0, 300, (n, 2))
        return np.concatenate([xy, xy + rng.integers(1, 120, (n, 2))], axis=1)

    pred = boxes(n_img * per_p)
    gt = boxes(n_img * per_g - 40)  # images with different GT counts, one without GT
    gt_bounds = np.array([0, 40, 80, 80, 120, 160])
    for i in (1, 3, 4):  # jittered copies of predictions: pairs near every threshold
        near = pred[i * per_p : i * per_p + 20] + rng.integers(-4, 5, (20, 4))
        near[:, 2:] = np.maximum(near[:, 2:], near[:, :2] + 1)
        gt[gt_bounds[i] : gt_bounds[i] + 20] = near
    # image 0: GT of the same height inside a prediction's x range, IoU = w_gt / w_pred
    # exactly (0.05, 0.3, 0.5, 0.75 of a width of 20), plus a copy and a zero-width box
    tight = [[0, 0, 1, 10], [0, 0, 6, 10], [0, 0, 10, 10], [0, 0, 15, 10], [0, 0, 20, 10]]
    pred[:3] = [[0, 0, 20, 10], [0, 0, 20, 10], [7, 0, 7, 10]]
    gt[:5] = tight
    row_img = np.repeat(np.arange(n_img), per_p)
    rows = np.arange(len(pred))
    p, g, v = candidate_pairs(rows, row_img, pred, gt, gt_bounds, thr)
    got = sorted(zip(p.tolist(), g.tolist(), v.tolist(), strict=True))
    want = []
    for i in range(n_img):
        ps, gs = np.flatnonzero(row_img == i), np.arange(gt_bounds[i], gt_bounds[i + 1])
        ious = iou_matrix(pred[ps], gt[gs])
        want += [
            (int(ps[a]), int(gs[b]), float(ious[a, b]))
            for a, b in zip(*np.nonzero(ious >= thr), strict=True)
        ]
    assert got == sorted(want) and len(got) > (100 if thr < 0.1 else 40)
    assert {(0, k) for k in range(5) if (1, 3, 6, 10, 15)[k] / 20 >= thr} <= {
        (a, b) for a, b, _ in got
    }
