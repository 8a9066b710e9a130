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


def test_precision_mapping_and_quantile_bins_by_hand():
    from coordbench.metrics.calibration import precision_at_score, quantile_bins

    # scores 0.04 0.03 0.03 0.02 0.01 with TP TP FP TP FP: precision at >= s, ties share it
    scores = np.array([0.01, 0.03, 0.04, 0.02, 0.03])
    correct = np.array([False, True, True, True, False])
    got = precision_at_score(scores, correct)
    np.testing.assert_allclose(got, [3 / 5, 2 / 3, 1.0, 3 / 4, 2 / 3])
    bins = quantile_bins(scores, correct, 2)
    # the cut falls inside the 0.03 tie, so the tie stays in one bin
    assert [(b["lo"], b["hi"], b["count"]) for b in bins] == [(0.01, 0.02, 2), (0.03, 0.04, 3)]
    assert [b["tp_rate"] for b in bins] == [0.5, pytest.approx(2 / 3)]
    assert sum(b["count"] for b in bins) == len(scores)


def test_tiny_scores_of_true_positives_get_a_readable_calibrated_view():
    """The embedded model's case: scores 0.01-0.05 while nearly all boxes are TP. The raw ECE is
    about 0.95; mapped to precision the score is close to calibrated."""
    from coordbench.metrics.calibration import (
        SCORE_MEANING,
        ece,
        precision_at_score,
        reliability_bins,
    )

    rng = np.random.default_rng(0)
    scores = rng.uniform(0.01, 0.05, 500)
    correct = rng.random(500) < 0.99
    raw = ece(reliability_bins(scores, correct, 10), 500)
    mapped = ece(reliability_bins(precision_at_score(scores, correct), correct, 10), 500)
    assert raw > 0.9 and mapped < 0.05
    assert "not a probability" in SCORE_MEANING


def test_numpy_ranks_and_spearman_equal_scipy():
    from scipy.stats import rankdata as scipy_rankdata
    from scipy.stats import spearmanr

    from coordbench.metrics.calibration import rankdata

    rng = np.random.default_rng(1)
    s = rng.integers(0, 20, 300) / 20  # many ties
    c = rng.random(300) < 0.4
    np.testing.assert_array_equal(rankdata(s), scipy_rankdata(s))
    assert spearman(s, c) == pytest.approx(spearmanr(s, c.astype(float)).statistic, abs=1e-12)
