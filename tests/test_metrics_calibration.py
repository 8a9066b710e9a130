"""Calibration statistics against hand-computed values; None (never NaN) when undefined."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coordbench.metrics.calibration import auroc, calibration, ece, reliability_bins, spearman


def test_spearman_hand_computed():
    scores, correct = np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False])
    # ranks x = 4,3,2,1; y = 3.5,3.5,1.5,1.5 -> cov 4 / (sqrt(5) * 2)
    assert spearman(scores, correct) == pytest.approx(4 / (2 * math.sqrt(5)))
    assert spearman(scores, ~correct) == pytest.approx(-4 / (2 * math.sqrt(5)))


def test_auroc_with_ties_uses_midranks():
    assert auroc(np.array([0.9, 0.8, 0.2]), np.array([True, True, False])) == 1.0
    assert auroc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    # TPs 0.9, 0.5; FPs 0.5, 0.1: pairs (0.9>0.5), (0.9>0.1), (0.5=0.5 -> 1/2), (0.5>0.1) = 3.5 / 4
    assert auroc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False])) == 0.875


def test_ece_equal_width_bins():
    scores, correct = np.array([0.95, 0.95, 0.15, 1.0]), np.array([True, False, False, True])
    bins = reliability_bins(scores, correct, 10)
    assert [b["count"] for b in bins] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 3]  # 1.0 falls in the last bin
    # last bin: mean score 2.9/3, TP rate 2/3; bin 1: 0.15 vs 0
    want = 3 / 4 * abs(2 / 3 - 2.9 / 3) + 1 / 4 * 0.15
    assert ece(bins, 4) == pytest.approx(want)


def test_undefined_statistics_are_none():
    assert spearman(np.array([0.9, 0.8]), np.array([True, True])) is None  # all TP
    assert spearman(np.array([0.5, 0.5]), np.array([True, False])) is None  # constant score
    assert auroc(np.array([0.9]), np.array([True])) is None
    empty = calibration({"images": [], "annotations": [], "categories": []}, [])
    assert empty["n_preds"] == 0
    assert all(
        empty[k] is None for k in ("spearman", "auroc", "ece", "brier", "tp_rate", "mean_score")
    )


def test_correctness_is_class_aware_at_iou_half():
    gt = {
        "images": [{"id": 0, "width": 100, "height": 100}],
        "annotations": [
            {
                "id": 1,
                "image_id": 0,
                "category_id": 1,
                "bbox": [0, 0, 40, 40],
                "area": 1600,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    preds = [
        {
            "image_id": 0,
            "category_id": 2,
            "bbox": [0, 0, 40, 40],
            "score": 0.9,
        },  # right box, wrong class
        {
            "image_id": 0,
            "category_id": 1,
            "bbox": [0, 0, 40, 20],
            "score": 0.8,
        },  # IoU exactly 0.5: TP
        {"image_id": 0, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 0.7},  # GT already taken
    ]
    cal = calibration(gt, preds)
    assert (cal["n_preds"], cal["n_tp"]) == (3, 1)
    assert cal["auroc"] == 0.5  # the TP (0.8) beats one FP (0.7) and loses to the other (0.9)
    assert cal["brier"] == pytest.approx((0.9**2 + 0.2**2 + 0.7**2) / 3)
