"""F1-ish set matching [UP-F1ISH] on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.metrics.f1 import greedy_match, object_iou_matrix, prf, primary_threshold
from coordbench.metrics.scoring import EvalOptions, evaluate_records, write_eval_dir


def rec(image, gt, pred, w=100, h=100):
    return {
        "image": image,
        "width": w,
        "height": h,
        "gt": [{"type": "bbox_2d", "points": list(g[:4]), "desc": g[4]} for g in gt],
        "pred": [
            {"type": "bbox_2d", "points": list(p[:4]), "desc": p[4], "score": 0.5} for p in pred
        ],
        "pred_score_source": "test",
        "pred_score_version": 1,
    }


def test_greedy_match_order_iou_then_pred_then_gt():
    ious = np.array([[0.6, 0.8], [0.0, 0.8], [0.8, 0.0]])
    # (0.8, p0, g1) first; (0.8, p1, g1) loses g1; (0.8, p2, g0) next; (0.6, p0, g0) loses p0
    assert greedy_match(ious, 0.5) == [(0, 1, 0.8), (2, 0, 0.8)]
    assert greedy_match(ious, 0.85) == []
    assert greedy_match(np.array([[0.5]]), 0.5) == [(0, 0, 0.5)]  # IoU >= thr


def test_iou_is_continuous_box_area():
    boxes = [{"type": "bbox_2d", "bbox": [0, 0, 10, 10]}]
    other = [
        {"type": "bbox_2d", "bbox": [5, 0, 15, 10]},
        {"type": "bbox_2d", "bbox": [10, 0, 20, 10]},
    ]
    assert object_iou_matrix(boxes, other, 100, 100).tolist() == [[50 / 150, 0.0]]


def test_polygon_uses_mask_iou():
    gt = [{"type": "poly", "points": [0, 0, 20, 0, 20, 20, 0, 20], "bbox": [0, 0, 20, 20]}]
    pred = [{"type": "bbox_2d", "bbox": [0, 0, 20, 20], "points": [0, 0, 20, 20]}]
    assert object_iou_matrix(pred, gt, 50, 50)[0, 0] == pytest.approx(1.0)


def test_prf_conventions():
    assert prf(0, 0, 3) == (1.0, 0.0, 0.0)  # no predictions: P = 1
    assert prf(0, 0, 0) == (1.0, 1.0, 1.0)  # nothing to find, nothing predicted
    assert prf(0, 2, 0) == (0.0, 1.0, 0.0)
    assert prf(1, 1, 1) == (0.5, 0.5, 0.5)


def test_primary_threshold():
    assert primary_threshold((0.3, 0.5)) == 0.5
    assert primary_threshold((0.3, 0.7)) == 0.7


def sims(table):
    def encoder(texts):
        return np.array([table[t] for t in texts], dtype=np.float32)

    return encoder


def test_wrong_class_match_counts_fp_and_fn_in_full():
    r = rec("a.jpg", [(0, 0, 50, 50, "cat")], [(0, 0, 50, 50, "dog")])
    enc = sims({"cat": [1.0, 0.0], "dog": [0.0, 1.0]})
    m = evaluate_records(
        [r], EvalOptions(pred_scope="all", f1_iou_thrs=(0.5,)), encoder=enc
    ).metrics
    assert (m["f1ish@0.50_tp_loc"], m["f1ish@0.50_fp_loc"], m["f1ish@0.50_fn_loc"]) == (1, 0, 0)
    assert (m["f1ish@0.50_matched_sem_ok"], m["f1ish@0.50_matched_sem_bad"]) == (0, 1)
    assert (m["f1ish@0.50_tp_full"], m["f1ish@0.50_fp_full"], m["f1ish@0.50_fn_full"]) == (0, 1, 1)
    assert m["f1ish@0.50_sem_acc_on_matched"] == 0.0 and m["f1ish@0.50_f1_full_micro"] == 0.0


def test_annotated_scope_ignores_preds_outside_the_image_label_space():
    r = rec(
        "a.jpg",
        [(0, 0, 50, 50, "cat")],
        [(0, 0, 50, 50, "kitten"), (60, 60, 90, 90, "car"), (60, 0, 90, 30, "Cat")],
    )
    enc = sims({"cat": [1.0, 0.0], "kitten": [0.8, 0.6], "car": [0.0, 1.0]})
    res = evaluate_records(
        [r], EvalOptions(pred_scope="annotated", semantic_threshold=0.7), encoder=enc
    )
    row = res.matches["0.50"][0]
    assert row["ignored_pred_indices"] == [1]  # car: cosine 0 with cat
    assert row["matches"][0]["pred_idx"] == 0 and row["matches"][0]["sem_sim"] == pytest.approx(0.8)
    assert row["unmatched_pred_indices"] == [2]
    m = res.metrics
    assert (
        m["f1ish@0.50_pred_total"],
        m["f1ish@0.50_pred_eval"],
        m["f1ish@0.50_pred_ignored"],
    ) == (3, 2, 1)
    assert m["f1ish@0.50_tp_full"] == 1 and m["f1ish@0.50_fp_full"] == 1
    res_all = evaluate_records(
        [r], EvalOptions(pred_scope="all", semantic_threshold=0.7), encoder=enc
    )
    assert res_all.metrics["f1ish@0.50_fp_loc"] == 2


def test_micro_and_macro_over_images():
    recs = [
        rec(
            "a.jpg", [(0, 0, 50, 50, "cat"), (60, 60, 90, 90, "cat")], [(0, 0, 50, 50, "cat")]
        ),  # P1 R.5
        rec("b.jpg", [(0, 0, 50, 50, "cat")], []),  # P1 R0 F0
        rec(
            "c.jpg", [], []
        ),  # no GT, no preds: P = R = F1 = 1 (image kept, deviation from upstream)
    ]
    m = evaluate_records(recs, EvalOptions(pred_scope="all")).metrics
    assert m["f1ish@0.50_precision_loc_micro"] == 1.0
    assert m["f1ish@0.50_recall_loc_micro"] == pytest.approx(1 / 3)
    assert m["f1ish@0.50_f1_loc_micro"] == pytest.approx(0.5)
    assert m["f1ish@0.50_recall_loc_macro"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["f1ish@0.50_f1_loc_macro"] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_matches_files_follow_the_primary_threshold(tmp_path):
    r = rec("a.jpg", [(0, 0, 40, 40, "cat")], [(0, 0, 40, 20, "cat")])  # IoU 0.5
    res = evaluate_records([r], EvalOptions(f1_iou_thrs=(0.3, 0.7)))
    write_eval_dir(res, tmp_path)
    assert res.primary_key == "0.70"
    assert {p.name for p in tmp_path.glob("matches*")} == {"matches.jsonl", "matches@0.30.jsonl"}
    assert res.matches["0.30"][0]["tp_loc"] == 1 and res.matches["0.70"][0]["tp_loc"] == 0
    assert list(res.metrics)[12].startswith("f1ish@0.30_")  # thresholds in ascending order
