"""Image-level bootstrap: per-image matching reused, accumulate re-run per resample.

Oracle: pycocotools itself, run on the resampled COCO set in which every copy of an image is a
renamed image (copies of image i in a row, images in their original order).
"""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.metrics.bootstrap import (
    BootstrapData,
    paired_bootstrap,
    resample_counts,
    resample_metrics,
)
from coordbench.metrics.coco import STAT_NAMES, coco_stats
from coordbench.metrics.coco_images import AREA_NAMES, per_image_eval
from coordbench.metrics.scoring import EvalOptions, evaluate_records, write_eval_dir
from tests.test_metrics_coco import random_coco


def duplicated(gt: dict, dts: list, w: np.ndarray) -> tuple[dict, list]:
    """The COCO dicts of the multiset `w`: copy c of image i becomes a new image,
    in (i, c) order."""
    images, anns, preds = [], [], []
    for i, im in enumerate(gt["images"]):
        for _ in range(w[i]):
            new = len(images)
            images.append({**im, "id": new})
            for a in gt["annotations"]:
                if a["image_id"] == im["id"]:
                    anns.append({**a, "id": len(anns) + 1, "image_id": new})
            preds += [{**d, "image_id": new} for d in dts if d["image_id"] == im["id"]]
    return {**gt, "images": images, "annotations": anns}, preds


@pytest.mark.parametrize("seed", range(6))
def test_numpy_matcher_equals_pycocotools_evaluate_img(seed):
    gt, dts = random_coco(seed)
    ours, ref = per_image_eval(gt, dts, "numpy"), per_image_eval(gt, dts, "pycocotools")
    for area in AREA_NAMES:
        a, b = ours.areas[area], ref.areas[area]
        for f in ("cat", "img", "rank", "score", "tp", "ign"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), (area, f)
        key_a, key_b = np.lexsort((a.npig_cat, a.npig_img)), np.lexsort((b.npig_cat, b.npig_img))
        assert np.array_equal(a.npig[key_a], b.npig[key_b]) and np.array_equal(
            a.npig_img[key_a], b.npig_img[key_b]
        )


@pytest.mark.parametrize("seed", range(4))
def test_resampled_stats_equal_cocoeval_on_the_resampled_set(seed):
    gt, dts = random_coco(seed)  # odd seeds: scores from {0.3, 0.6, 0.9}, ties within images
    data = BootstrapData([str(i) for i in range(25)], gt, dts, [{}] * 25)
    w = np.vstack([np.ones(25, np.int64), resample_counts(25, 3, np.random.default_rng(seed))])
    got = resample_metrics(data, w, tuple(f"bbox_{n}" for n in STAT_NAMES))
    for b in range(len(w)):
        ref, _ = coco_stats(*duplicated(gt, dts, w[b]), "pycocotools")
        assert [got[f"bbox_{n}"][b] for n in STAT_NAMES] == ref  # exactly, not approximately


def recs_pair(seed: int, n: int = 30) -> tuple[list[dict], list[dict]]:
    """Two runs over the same images: B's boxes are exact, A's are jittered and partly missing."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for i in range(n):
        gt = []
        for _ in range(int(rng.integers(0, 4))):
            x, y = (int(v) for v in rng.integers(0, 150, 2))
            gt.append(
                {
                    "type": "bbox_2d",
                    "points": [x, y, x + int(rng.integers(5, 50)), y + int(rng.integers(5, 50))],
                    "desc": str(rng.choice(["cat", "dog", "car"])),
                }
            )
        pb = [{**g, "score": float(rng.uniform(0.5, 1))} for g in gt]
        pa = [
            {
                **g,
                "points": [v + int(rng.integers(-6, 7)) for v in g["points"]],
                "score": float(rng.random()),
            }
            for g in gt
            if rng.random() < 0.7
        ]
        base = {
            "image": f"img{i}.jpg",
            "width": 200,
            "height": 200,
            "gt": gt,
            "pred_score_source": "test",
            "pred_score_version": 1,
        }
        a.append({**base, "pred": pa})
        b.append({**base, "pred": pb})
    return a, b


def test_f1_resampling_equals_rescoring_duplicated_records():
    recs, _ = recs_pair(1)
    res = evaluate_records(recs, EvalOptions(pred_scope="all"))
    data = BootstrapData.from_result(res)
    w = resample_counts(len(recs), 2, np.random.default_rng(0))
    names = tuple(
        f"f1ish@{t}_{s}_{k}_{a}"
        for t in ("0.30", "0.50")
        for s in ("precision", "recall", "f1")
        for k in ("loc", "full")
        for a in ("micro", "macro")
    )
    got = resample_metrics(data, w, names)
    for b in range(len(w)):
        dup = [
            {**r, "image": f"{r['image']}#{c}"}
            for r, n in zip(recs, w[b], strict=True)
            for c in range(n)
        ]
        want = evaluate_records(dup, EvalOptions(pred_scope="all")).metrics
        for m in names:
            assert got[m][b] == pytest.approx(want[m], abs=1e-12), m


def test_paired_bootstrap_verdicts_and_pairing(tmp_path):
    ra, rb = recs_pair(2, n=40)
    a, b = evaluate_records(ra, EvalOptions()), evaluate_records(rb, EvalOptions())
    out = paired_bootstrap(a, b, n=200, seed=3)
    assert out["n_images"] == 40 and out["only_a"] == out["only_b"] == 0
    for m, row in out["metrics"].items():
        assert row["a"] == pytest.approx(a.metrics[m], abs=1e-12) and row["b"] == pytest.approx(
            b.metrics[m], abs=1e-12
        )
    assert (
        out["metrics"]["bbox_AP"]["verdict"] == "better" and out["metrics"]["bbox_AP"]["ci_low"] > 0
    )
    back = paired_bootstrap(b, a, n=200, seed=3)["metrics"]["bbox_AP"]
    assert back["verdict"] == "worse" and back["delta"] == pytest.approx(
        -out["metrics"]["bbox_AP"]["delta"]
    )
    same = paired_bootstrap(a, a, n=50)["metrics"]["bbox_AP"]
    assert (same["delta"], same["ci_low"], same["ci_high"], same["verdict"]) == (
        0.0,
        0.0,
        0.0,
        "noise",
    )
    # B's records in another order (and from its eval dir): pairing by image key
    # gives the same answer
    shuffled = evaluate_records(rb[::-1], EvalOptions())
    write_eval_dir(shuffled, tmp_path / "b")
    again = paired_bootstrap(a, tmp_path / "b", n=200, seed=3)
    assert again["metrics"]["bbox_AP"]["delta"] == pytest.approx(
        out["metrics"]["bbox_AP"]["delta"], abs=1e-12
    )
    assert again["metrics"]["f1ish@0.50_f1_full_micro"] == pytest.approx(
        out["metrics"]["f1ish@0.50_f1_full_micro"]
    )


def test_restricting_to_shared_keys_and_empty_sets():
    ra, rb = recs_pair(3, n=12)
    a, b = evaluate_records(ra, EvalOptions()), evaluate_records(rb[:8], EvalOptions())
    out = paired_bootstrap(a, b, n=20, metrics=("bbox_AP",))
    assert (out["n_images"], out["only_a"], out["only_b"]) == (8, 4, 0)
    none = [{**r, "pred": []} for r in ra]
    z = BootstrapData.from_result(evaluate_records(none, EvalOptions()))
    assert (
        resample_metrics(z, np.ones((1, 12), np.int64), ("bbox_AP", "bbox_AR100"))["bbox_AP"][0]
        == 0.0
    )
    with pytest.raises(ValueError, match="cannot bootstrap"):
        paired_bootstrap(a, b, n=5, metrics=("f1ish@0.50_tp_loc",))


def test_bootstrap_reads_an_upstream_eval_dir():
    """Upstream's own eval files (oracle) feed the bootstrap; the full set reproduces
    its metrics."""
    import json
    from pathlib import Path

    outputs = Path(__file__).parent / "oracle" / "eval_oracle_expected_outputs"
    want = json.loads((outputs / "metrics.json").read_text())["metrics"]
    data = BootstrapData.from_eval_dir(outputs)
    assert data.image_keys[0] == "images/val2017/img0.jpg"
    names = (
        "bbox_AP",
        "bbox_AP50",
        "bbox_APm",
        "bbox_AR1",
        "bbox_ARl",
        "f1ish@0.50_f1_full_micro",
        "f1ish@0.30_recall_loc_macro",
    )
    got = resample_metrics(data, np.ones((1, 6), np.int64), names)
    for m in names:
        assert got[m][0] == pytest.approx(want[m], abs=1e-12), m
