"""COCO scoring: upstream rules [UP-COCO-EVAL], the empty-GT deviation, and
faster-coco-eval == pycocotools."""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.errors import DataError
from coordbench.metrics.coco import STAT_NAMES, coco_stats
from coordbench.metrics.scoring import EvalOptions, evaluate_records

BOX = "bbox_2d"


def rec(image: str, gt: list, pred: list, w: int = 200, h: int = 200) -> dict:
    """An upstream-format scored record; gt/pred items are (x1, y1, x2, y2, desc[, score])."""
    return {
        "image": image,
        "width": w,
        "height": h,
        "gt": [{"type": BOX, "points": list(g[:4]), "desc": g[4]} for g in gt],
        "pred": [{"type": BOX, "points": list(p[:4]), "desc": p[4], "score": p[5]} for p in pred],
        "pred_score_source": "confidence_postop",
        "pred_score_version": 2,
    }


def random_coco(seed: int, n_img: int = 25, n_cat: int = 6) -> tuple[dict, list]:
    """Random COCO dicts with the edge cases: empty images, images without detections, tiny and
    large boxes, many classes, score ties (scores from a 3-value set on odd seeds)."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 300} for i in range(n_img)]
    anns, dts = [], []
    for i in range(n_img):
        for _ in range(rng.choice([0, 0, 1, 3, 8])):
            w, h = (int(v) for v in rng.choice([2, 8, 30, 60, 150], 2))
            x, y = int(rng.integers(0, 400 - w)), int(rng.integers(0, 300 - h))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(rng.integers(1, n_cat + 1)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    for a in anns:
        if rng.random() < 0.2:
            continue  # an image may end up with GT but no detection
        for _ in range(int(rng.integers(1, 4))):
            x, y, w, h = (np.array(a["bbox"]) + rng.integers(-4, 5, 4)).tolist()
            dts.append(
                {
                    "image_id": a["image_id"],
                    "bbox": [x, y, max(1, w), max(1, h)],
                    "category_id": a["category_id"]
                    if rng.random() < 0.8
                    else int(rng.integers(1, n_cat + 1)),
                }
            )
    for _ in range(n_img):  # false positives, some on images without GT
        w, h = (int(v) for v in rng.integers(1, 120, 2))
        dts.append(
            {
                "image_id": int(rng.integers(0, n_img)),
                "category_id": int(rng.integers(1, n_cat + 1)),
                "bbox": [int(rng.integers(0, 280)), int(rng.integers(0, 180)), w, h],
            }
        )
    for d in dts:
        d["score"] = float(rng.choice([0.3, 0.6, 0.9]) if seed % 2 else rng.random())
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, n_cat + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, dts


@pytest.mark.parametrize("seed", range(8))
def test_faster_equals_pycocotools_on_random_sets(seed):
    gt, dts = random_coco(seed)
    fast, fast_pc = coco_stats(gt, dts, "faster")
    ref, ref_pc = coco_stats(gt, dts, "pycocotools")
    assert np.allclose(fast, ref, rtol=0, atol=1e-12), (fast, ref)
    assert np.allclose(
        [v for _, v in fast_pc], [v for _, v in ref_pc], rtol=0, atol=1e-12, equal_nan=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_faster_equals_pycocotools_on_larger_random_sets(seed):
    gt, dts = random_coco(1000 + seed, n_img=150, n_cat=30)
    assert np.allclose(
        coco_stats(gt, dts, "faster")[0], coco_stats(gt, dts, "pycocotools")[0], rtol=0, atol=1e-12
    )


def test_empty_gt_record_does_not_shift_predictions():
    """[UP-EMPTY-GT]'s 3-record example: a perfect predictor scores AP 1 (upstream: 0)."""
    recs = [
        rec("a.jpg", [(10, 10, 60, 60, "cat")], [(10, 10, 60, 60, "cat", 0.9)]),
        rec("b.jpg", [], []),
        rec("c.jpg", [(20, 20, 120, 90, "dog")], [(20, 20, 120, 90, "dog", 0.8)]),
    ]
    res = evaluate_records(recs, EvalOptions())
    # pycocotools' precision is tp / (tp + fp + eps): a perfect AP is 1 - 2e-16, as here
    assert res.metrics["bbox_AP"] == pytest.approx(1.0, abs=1e-12)
    assert res.metrics["bbox_AR100"] == 1.0
    assert [im["id"] for im in res.coco_gt["images"]] == [0, 1, 2]  # the empty image is kept
    assert [p["image_id"] for p in res.coco_preds] == [0, 2]


def test_prediction_on_empty_gt_record_is_a_false_positive():
    recs = [
        rec("a.jpg", [(10, 10, 60, 60, "cat")], [(10, 10, 60, 60, "cat", 0.5)]),
        rec("b.jpg", [], [(0, 0, 50, 50, "cat", 0.9)]),
    ]
    res = evaluate_records(recs, EvalOptions(pred_scope="all"))
    # P/R points: (0, 0) then (1/2, 1) -> interpolated precision 0.5 at every recall threshold
    assert res.metrics["bbox_AP"] == pytest.approx(0.5, abs=1e-12)
    assert res.metrics["f1ish@0.50_fp_loc"] == 1.0


def test_zero_predictions_give_zeros_and_minus_one_stays():
    recs = [rec("a.jpg", [(10, 10, 20, 20, "cat")], [])]
    res = evaluate_records(recs, EvalOptions())
    assert all(res.metrics[f"bbox_{n}"] == 0.0 for n in STAT_NAMES)  # upstream rule, not -1
    assert res.per_class == [("cat", 0.0)]
    recs[0]["pred"] = [{"type": BOX, "points": [10, 10, 20, 20], "desc": "cat", "score": 0.7}]
    res = evaluate_records(recs, EvalOptions())
    assert res.metrics["bbox_APs"] == pytest.approx(1.0, abs=1e-12)
    assert res.metrics["bbox_APm"] == res.metrics["bbox_APl"] == -1.0  # no medium / large GT
    assert res.metrics["bbox_ARm"] == res.metrics["bbox_ARl"] == -1.0


def test_categories_mapping_and_detection_order():
    table = {
        "kitty": [1.0, 0.0],
        "cat": [1.0, 0.0],
        "dog": [0.0, 1.0],
        "car": [0.6, 0.8],
        "tree": [-1.0, 0.0],
    }
    calls = []

    def encoder(texts):
        calls.append(list(texts))
        return np.array([table[t] for t in texts], dtype=np.float32)

    recs = [
        rec(
            "a.jpg",
            [(0, 0, 50, 50, " dog "), (60, 60, 90, 90, "cat")],
            [
                (0, 0, 50, 50, "kitty", 0.5),
                (60, 60, 90, 90, "Cat", 0.5),
                (0, 0, 9, 9, "tree", 0.4),
                (1, 1, 40, 40, "", 0.3),
                (5, 5, 40, 40, "car", 0.2),
            ],
        ),
    ]
    res = evaluate_records(
        recs, EvalOptions(pred_scope="all", semantic_threshold=0.7), encoder=encoder
    )
    assert [c["name"] for c in res.coco_gt["categories"]] == [
        "dog",
        "cat",
    ]  # stripped, first appearance
    # kitty -> cat (1.0), Cat -> cat (normalised equal), tree -> dropped (-1.0), "" dropped,
    # car -> dog (0.8)
    assert [(p["category_id"], p["score"]) for p in res.coco_preds] == [
        (2, 0.5),
        (2, 0.5),
        (1, 0.2),
    ]
    c = res.counters
    # upstream counts the empty desc as unmapped and dropped too
    assert (c["semantic_mapped"], c["semantic_unmapped"], c["unknown_dropped"]) == (3, 2, 2)
    rows = {r["pred_desc"]: r for r in res.semantic_report["rows"]}
    assert rows["tree"]["mapped"] is False and rows["car"]["best_gt_desc"] == "dog"
    assert calls and all("" not in batch for batch in calls)


def test_score_provenance_and_range_are_enforced():
    good = rec("a.jpg", [(0, 0, 10, 10, "cat")], [(0, 0, 10, 10, "cat", 0.5)])
    with pytest.raises(DataError, match="pred_score_source"):
        evaluate_records([{**good, "pred_score_source": ""}])
    with pytest.raises(DataError, match="pred_score_version"):
        evaluate_records([{**good, "pred_score_version": "2"}])
    bad = rec("a.jpg", [(0, 0, 10, 10, "cat")], [(0, 0, 10, 10, "cat", 1.5)])
    with pytest.raises(DataError, match=r"record 0, pred 0: `score`"):
        evaluate_records([bad])


def test_geometry_is_validated_and_counted():
    r = rec("a.jpg", [(0, 0, 10, 10, "cat"), (5, 5, 5, 9, "cat")], [])
    r["pred"] = [
        {
            "type": BOX,
            "points": [30, 30, 20, 40],
            "desc": "cat",
            "score": 0.5,
        },  # reversed: degenerate
        {"type": BOX, "points": [0, 0, 10], "desc": "cat", "score": 0.5},
        {"type": "circle", "points": [0, 0, 10, 10], "desc": "cat", "score": 0.5},
        {
            "type": BOX,
            "points": [-5, 0, 500, 10.4],
            "desc": "cat",
            "score": 0.5,
        },  # clamped, rounded
    ]
    res = evaluate_records([r], EvalOptions(pred_scope="all"))
    assert res.counters["degenerate"] == 2 and res.counters["invalid_geometry"] == 2
    row = res.per_image[0]
    assert [x["reason"] for x in row["invalid_pred"]] == [
        "degenerate",
        "geometry_points",
        "geometry_kind",
    ]
    assert row["invalid_gt"][0]["reason"] == "degenerate"
    assert res.coco_preds[0]["bbox"] == [0, 0, 199, 10]


def test_malformed_objects_are_counted_not_fatal():
    base = rec("a.jpg", [(0, 0, 10, 10, "cat")], [])
    recs = [
        {**base, "pred": None},
        {**base, "image": "b.jpg", "pred": "garbage", "gt": {"not": "a list"}},
        {
            **base,
            "image": "c.jpg",
            "pred": [
                "text",
                None,
                {"type": "bbox_2d", "points": [None, 1, 2, 3]},
                {"type": "bbox_2d", "points": [True, 0, 5, 5], "score": 0.5},
                {"bbox_2d": [0, 0, 10, 10], "desc": 7, "score": 0.5},
            ],
        },
        {
            "image": "d.jpg",
            "gt": [],
            "pred": [],
            "pred_score_source": "x",
            "pred_score_version": 1,
        },  # no size
    ]
    res = evaluate_records(
        recs, EvalOptions(pred_scope="all"), encoder=lambda t: np.eye(len(t), dtype=np.float32)
    )
    assert res.counters["missing_size"] == 1 and res.counters["empty_pred"] == 2
    assert res.counters["invalid_geometry"] == 2 and res.counters["invalid_coord"] == 2
    assert [r["file_name"] for r in res.per_image] == ["a.jpg", "b.jpg", "c.jpg"]
    assert res.per_image[1]["gt_count"] == 0
    assert res.per_image[2]["pred_count"] == 1  # the bbox_2d-keyed object with desc 7 -> "7"
    assert res.matches["0.50"][2]["matches"][0]["sem_ok"] is False  # "7" is not "cat"


def test_encoder_is_not_loaded_when_descs_only_differ_in_case_or_spacing():
    def no_encoder(texts):
        raise AssertionError(f"encoder called for {texts}")

    r = rec("a.jpg", [(0, 0, 50, 50, "traffic light")], [(0, 0, 50, 50, "Traffic_Light", 0.9)])
    res = evaluate_records([r], EvalOptions(), encoder=no_encoder)
    assert res.counters["semantic_mapped"] == 1
    assert res.metrics["bbox_AP"] == pytest.approx(1.0, abs=1e-12)
    assert res.matches["0.50"][0]["matches"][0]["sem_sim"] == 1.0
