"""Honest-read diagnostics on hand-made runs (unscored gt_vs_pred records, our extra keys)."""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.metrics.diagnostics import diagnostics


def obj(x1, y1, x2, y2, desc):
    return {"type": "bbox_2d", "points": [x1, y1, x2, y2], "desc": desc}


def rec(gt, pred, status="ok", finish="stop"):
    return {
        "image": "x.jpg",
        "width": 100,
        "height": 100,
        "gt": gt,
        "pred": pred,
        "parse_status": status,
        "finish_reason": finish,
    }


def test_rates_duplicates_collapse_and_warnings():
    recs = [
        rec(
            [obj(0, 0, 50, 50, "cat")],
            [obj(0, 0, 50, 50, "cat"), obj(0, 0, 50, 51, "cat"), obj(0, 0, 50, 50, "dog")],
        ),
        rec(
            [obj(0, 0, 50, 50, "dog")],
            [obj(10, 10, 60, 60, "cat")],
            status="truncated",
            finish="length",
        ),
        rec([obj(0, 0, 50, 50, "dog")], [], status="malformed"),
        rec([], [obj(0, 0, 9, 9, "cat")]),
    ]
    d = diagnostics(recs)
    assert d["n_records"] == 4
    assert d["parse_status_counts"] == {
        "ok": 2,
        "salvaged": 0,
        "empty": 0,
        "truncated": 1,
        "malformed": 1,
    }
    assert d["truncation_rate"] == 0.25 and d["empty_pred_rate"] == 0.25
    assert (d["missed_images"], d["images_with_gt"]) == (1, 3)
    # IoU([0,0,50,50],[0,0,50,51]) = 2500/2550 = 0.98 same class -> 1 duplicate;
    # the dog box is another class
    assert (d["duplicate_pairs"], d["duplicate_preds"], d["images_with_duplicates"]) == (1, 1, 1)
    assert d["duplicate_rate"] == pytest.approx(1 / 5)
    assert d["top_pred_class"] == "cat" and d["top_pred_share"] == pytest.approx(4 / 5)
    assert d["class_collapse"] is True and d["top_class_gt_share"] == pytest.approx(1 / 3)
    assert d["score_tie_share"] is None  # unscored records
    text = " | ".join(d["warnings"])
    for needle in (
        "malformed",
        "truncated",
        "max_new_tokens",
        "no prediction",
        "duplicate",
        "class collapse",
    ):
        assert needle in text


def test_empty_answers_on_empty_images_are_not_a_warning():
    hit = rec([obj(0, 0, 50, 50, "cat")], [obj(0, 0, 50, 50, "cat")])
    d = diagnostics([hit, rec([], []), rec([], [])])
    assert d["empty_pred_rate"] == pytest.approx(2 / 3) and d["missed_images"] == 0
    assert not any("no prediction" in w for w in d["warnings"])
    d = diagnostics([hit, rec([obj(0, 0, 50, 50, "cat")], []), rec([], [])])
    assert "50.0% of images with objects have no prediction (1 of 2)" in d["warnings"]


def test_predict_nothing_baseline_is_scored_honestly():
    recs = [rec([obj(0, 0, 50, 50, "cat")], [obj(0, 0, 50, 50, "cat")]), rec([], [])]
    base = diagnostics(recs)["baseline_predict_nothing"]
    assert base["bbox_AP"] == 0.0 and base["bbox_AR100"] == 0.0
    assert base["f1ish@0.50_f1_full_micro"] == 0.0 and base["f1ish@0.50_recall_full_micro"] == 0.0
    assert base["f1ish@0.50_f1_full_macro"] == 0.5  # the image without GT is "perfect" when empty


def test_clean_run_has_no_warnings_and_score_ties_are_flagged():
    good = [
        rec([obj(0, 0, 50, 50, "cat")], [{**obj(0, 0, 50, 50, "cat"), "score": s}])
        for s in (0.9, 0.8, 0.7)
    ]
    d = diagnostics(good)
    assert d["class_collapse"] is True  # one class is all predictions ...
    assert d["warnings"] == []  # ... but also all GT: nothing to warn about
    tied = [
        rec([obj(0, 0, 50, 50, "cat")], [{**obj(0, 0, 50, 50, "cat"), "score": 1.0}])
        for _ in range(3)
    ]
    d = diagnostics(tied)
    assert d["score_tie_share"] == 1.0
    assert any("share one score" in w for w in d["warnings"])


def _brute_duplicates(images):
    """The definition, pair by pair: same normalised class and box IoU >= 0.95, i < j."""
    from coordbench.geometry import iou_matrix
    from coordbench.metrics.semantic import normalize_desc

    pairs, later, imgs = 0, set(), set()
    for n, img in enumerate(images):
        for j, b in enumerate(img.preds):
            for i in range(j):
                a = img.preds[i]
                if normalize_desc(a["desc"]) != normalize_desc(b["desc"]):
                    continue
                if iou_matrix([a["bbox"]], [b["bbox"]])[0, 0] >= 0.95:
                    pairs += 1
                    later.add((n, j))
                    imgs.add(n)
    return {
        "duplicate_pairs": pairs,
        "duplicate_preds": len(later),
        "images_with_duplicates": len(imgs),
    }


def test_vectorised_duplicates_equal_the_pairwise_definition():
    from coordbench.metrics.diagnostics import duplicates
    from coordbench.metrics.ingest import EvalImage

    rng = np.random.default_rng(0)
    images = []
    for n in range(60):
        preds = []
        for _ in range(rng.integers(0, 30)):
            x, y = int(rng.integers(0, 80)), int(rng.integers(0, 80))
            w, h = int(rng.integers(1, 40)), int(rng.integers(1, 40))
            preds.append(
                {
                    "type": "bbox_2d",
                    "bbox": [x, y, x + w, y + h],
                    "desc": str(rng.choice(["cat", "Cat ", "dog"])),
                }
            )
            if rng.random() < 0.4:  # a near copy: shifted by one pixel, or nested at ratio 0.95
                dx = int(rng.integers(0, 2))
                preds.append(
                    {"type": "bbox_2d", "bbox": [x + dx, y, x + w + dx, y + h], "desc": "cat"}
                )
        preds.append({"type": "bbox_2d", "bbox": [0, 0, 20, 100], "desc": "dog"})
        preds.append(
            {"type": "bbox_2d", "bbox": [0, 0, 19, 100], "desc": "dog"}
        )  # IoU exactly 0.95
        images.append(EvalImage(n, f"{n}.jpg", 200, 200, preds=preds))
    got = duplicates(images)
    assert got == _brute_duplicates(images)
    assert got["duplicate_pairs"] > 60


def test_one_answer_with_ten_thousand_boxes_is_fast_and_bounded():
    import resource
    import time

    from coordbench.metrics.diagnostics import duplicates
    from coordbench.metrics.ingest import EvalImage

    same = [{"type": "bbox_2d", "bbox": [10, 10, 50, 50], "desc": "cat"} for _ in range(10_000)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    got = duplicates([EvalImage(0, "a.jpg", 100, 100, preds=same)])
    elapsed = time.perf_counter() - t0
    n = 10_000
    assert got == {
        "duplicate_pairs": n * (n - 1) // 2,
        "duplicate_preds": n - 1,
        "images_with_duplicates": 1,
    }
    assert elapsed < 20  # ~5e7 candidate pairs in bounded chunks (a few s on a loaded 2-core box)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB
