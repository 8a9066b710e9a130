"""The federated LVIS evaluator equals lvis-api on random federated sets and on one
hand-computed case per rule."""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.errors import DataError
from coordbench.metrics.lvis_eval import LvisDets, lvis_evaluate, top_per_image
from tests.lvis_oracle import lvis_api_stats, random_lvis


def _dets(results):
    return LvisDets(
        np.array([r["image_id"] for r in results]),
        np.array([r["category_id"] for r in results]),
        np.array([r["bbox"] for r in results], float).reshape(-1, 4),
        np.array([r["score"] for r in results], float),
    )


@pytest.mark.parametrize("seed", range(6))
def test_every_stat_equals_lvis_api_on_random_federated_sets(seed):
    gt, results = random_lvis(seed)
    ref = lvis_api_stats(gt, results)
    ours = lvis_evaluate(gt, _dets(results)).stats
    assert set(ours) == set(ref)
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


@pytest.mark.parametrize("seed", range(3))
def test_iou_ties_between_gt_of_both_ignore_classes_equal_lvis_api(seed):
    """Exact duplicates of GT boxes with other areas (so a duplicate is ignored in one range and
    not in another), some flagged `ignore`, and detections on exactly those boxes: a detection
    must take the non-ignored duplicate before an ignored one, in every area range (the random
    sets above never tie, so they pass even when that preference is dropped; these fail)."""
    gt, results = random_lvis(seed, n_img=20)
    rng = np.random.default_rng(100 + seed)
    extra, next_id = [], max(a["id"] for a in gt["annotations"]) + 1
    for a in gt["annotations"]:
        for _ in range(int(rng.integers(0, 3))):
            area = float(rng.choice([200.0, 5000.0, 20000.0]))
            flag = {"ignore": 1} if rng.random() < 0.15 else {}
            extra.append({**a, "id": next_id, "area": area, **flag})
            next_id += 1
            results.append(
                {
                    **results[0],
                    "image_id": a["image_id"],
                    "category_id": a["category_id"],
                    "bbox": list(a["bbox"]),
                    "score": round(float(rng.random()), 1),
                }
            )
    gt["annotations"] += extra
    rng.shuffle(gt["annotations"])
    ref = lvis_api_stats(gt, results)
    ours = lvis_evaluate(gt, _dets(results)).stats
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


@pytest.mark.parametrize("max_dets", [1, 7, 1000])
def test_another_per_image_cap_equals_lvis_api(max_dets):
    gt, results = random_lvis(5)
    ref = lvis_api_stats(gt, results, max_dets=max_dets)
    ours = lvis_evaluate(gt, _dets(results), max_dets).stats
    assert set(ours) == set(ref)  # lvis-api keeps the AR@300 names whatever the cap
    assert ours != lvis_evaluate(gt, _dets(results)).stats or max_dets >= 320
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


def _gt(neg=(), nel=(), freq="f"):
    return {
        "images": [
            {
                "id": 1,
                "width": 100,
                "height": 100,
                "neg_category_ids": list(neg),
                "not_exhaustive_category_ids": list(nel),
            }
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600}
        ],
        "categories": [
            {"id": 1, "name": "a", "frequency": freq},
            {"id": 2, "name": "b", "frequency": "r"},
        ],
    }


def _run(gt, results):
    ours = lvis_evaluate(gt, _dets(results))
    ref = lvis_api_stats(gt, results)
    for k in ref:
        assert ours.stats[k] == pytest.approx(ref[k], abs=1e-12), k
    return ours


HIT = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.5}


def test_a_category_neither_in_gt_nor_negative_is_not_evaluated():
    fp = {"image_id": 1, "category_id": 2, "bbox": [60, 60, 30, 30], "score": 0.9}
    out = _run(_gt(), [HIT, fp])
    assert out.counters["dets_not_evaluated"] == 1
    assert out.stats["AP"] == pytest.approx(1.0)  # the category-2 box costs nothing
    out = _run(_gt(neg=[2]), [HIT, fp])  # listed negative: evaluated, but no GT in category 2
    assert out.counters["dets_not_evaluated"] == 0 and out.stats["AP"] == pytest.approx(1.0)


def test_unmatched_detections_of_a_not_exhaustive_category_are_ignored():
    fp = {"image_id": 1, "category_id": 1, "bbox": [60, 60, 30, 30], "score": 0.9}
    exhaustive = _run(_gt(), [HIT, fp]).stats["AP"]
    relaxed = _run(_gt(nel=[1]), [HIT, fp]).stats["AP"]
    # the higher-scored FP comes first: precision 1/2 at recall 1 -> AP 0.5; ignored -> 1.0
    assert exhaustive == pytest.approx(0.5) and relaxed == pytest.approx(1.0)


def test_each_image_keeps_its_top_300_by_score():
    low = [{"image_id": 1, "category_id": 1, "bbox": [60, 60, 30, 30], "score": 0.9}] * 300
    out = _run(_gt(), [{**HIT, "score": 0.1}, *low])  # the hit is the 301st: cut
    assert out.counters["dets_over_max_dets"] == 1 and out.stats["AP"] == 0.0
    keep = top_per_image(np.zeros(5, int), np.array([0.1, 0.5, 0.5, 0.9, 0.5]), 3)
    assert keep.tolist() == [1, 2, 3]  # ties: file order


def test_frequency_groups_and_area_ranges():
    out = _run(_gt(freq="c"), [HIT])
    assert out.stats["APc"] == pytest.approx(1.0)
    assert out.stats["APr"] == -1 and out.stats["APf"] == -1  # no GT in those groups
    assert out.stats["APm"] == pytest.approx(1.0) and out.stats["APs"] == -1


def test_bad_input_names_the_culprit():
    gt = _gt()
    del gt["images"][0]["neg_category_ids"]
    with pytest.raises(DataError, match="neg_category_ids.*COCO file passed as LVIS"):
        lvis_evaluate(gt, _dets([HIT]))
    gt = _gt()
    gt["categories"][0].pop("frequency")
    with pytest.raises(DataError, match="frequency"):
        lvis_evaluate(gt, _dets([HIT]))


def test_an_iou_tie_goes_to_the_last_gt_in_file_order():
    """det 1 overlaps G1 and G2 with exactly the same IoU (360 / 440); det 2 (lower score)
    overlaps only G1. lvis-api takes the last GT of equal IoU, so with G1 filed first det 1
    takes G2 and det 2 takes G1 (AP 1); with G2 first det 1 takes G1 and det 2 is a false
    positive (precision 1 up to recall 1/2: AP 51/101)."""
    g1 = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 10, 20, 20], "area": 400}
    g2 = {**g1, "id": 2, "bbox": [12, 10, 20, 20]}
    d1 = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}
    d2 = {**d1, "bbox": [4, 10, 20, 20], "score": 0.8}
    gt = _gt()
    gt["annotations"] = [g1, g2]
    assert _run(gt, [d1, d2]).stats["AP50"] == pytest.approx(1.0)
    gt["annotations"] = [g2, g1]
    assert _run(gt, [d1, d2]).stats["AP50"] == pytest.approx(51 / 101)
    # G1 ignored: det 1 takes the non-ignored G2 whatever the order, det 2 then G1 (ignored)
    gt["annotations"] = [g2, {**g1, "ignore": 1}]
    out = _run(gt, [d1, d2])
    assert out.stats["AP50"] == pytest.approx(1.0) and out.counters["dets_evaluated"] == 2


def _write(tmp_path, gt, results):
    import json

    g, d = tmp_path / "lvis_gt.json", tmp_path / "results.json"
    g.write_text(json.dumps(gt))
    d.write_text(json.dumps(results))
    return g, d


def test_eval_lvis_pair_cli_equals_lvis_api_and_writes_the_files(tmp_path):
    import json

    from tests.test_reliability_support import run_cli

    gt, results = random_lvis(11)
    g, d = _write(tmp_path, gt, results)
    p = run_cli(["eval", "--lvis-gt", str(g), "--lvis-dt", str(d), "--out", str(tmp_path / "ev")])
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    ref = lvis_api_stats(gt, results)
    for k, v in ref.items():
        assert doc["metrics"][f"lvis_{k}"] == pytest.approx(v, abs=1e-12), k
    assert {"lvis_diag_dets_total", "lvis_diag_dets_not_evaluated"} <= set(doc["counters"])
    head = (tmp_path / "ev" / "per_class.csv").read_text().splitlines()[0]
    assert head == "category,frequency,AP,n_gt"
    args = ["eval", "--lvis-gt", str(g), "--lvis-dt", str(d), "--lvis-max-dets", "10"]
    p = run_cli([*args, "--out", str(tmp_path / "ev10")])
    assert p.returncode == 0 and "past the 10 per image" in p.stdout, p.stderr
    doc = json.loads((tmp_path / "ev10" / "metrics.json").read_text())
    assert doc["max_dets"] == 10
    ref = lvis_api_stats(gt, results, max_dets=10)
    for k, v in ref.items():
        assert doc["metrics"][f"lvis_{k}"] == pytest.approx(v, abs=1e-12), k


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda gt, r: r.append({**r[0], "image_id": 424242}), "image_id 424242, not in GT"),
        (lambda gt, r: r.append({**r[0], "category_id": 999}), "category_id 999, not an LVIS"),
        (lambda gt, r: r.append({**r[0], "score": "high"}), "non-numeric score"),
        (lambda gt, r: r.append({**r[0], "score": True}), "result 20 has a non-numeric score"),
        (lambda gt, r: r.append({**r[0], "bbox": [1, 2, 3]}), "result 20 has a bad bbox"),
        (lambda gt, r: r.append({**r[0], "image_id": "100"}), "image_id '100', not in GT"),
        (lambda gt, r: [im.pop("neg_category_ids") for im in gt["images"]], "not an LVIS file"),
        (
            lambda gt, r: gt["annotations"][1].update(category_id=999),
            "annotation 1 (id 2) has category_id 999",
        ),
        (
            lambda gt, r: gt["annotations"][1].update(image_id=999),
            "annotation 1 (id 2) has image_id 999",
        ),
        (lambda gt, r: gt["annotations"][1].pop("id"), "annotation 1 has no `id`"),
        (
            lambda gt, r: gt["images"][1].update(neg_category_ids=[999]),
            "neg_category_ids names unknown category 999",
        ),
    ],
)
def test_eval_lvis_pair_bad_input_names_the_culprit(tmp_path, edit, match):
    from tests.test_reliability_support import run_cli

    gt, results = random_lvis(3, n_img=4, dets_per_img=5)
    edit(gt, results)
    g, d = _write(tmp_path, gt, results)
    p = run_cli(["eval", "--lvis-gt", str(g), "--lvis-dt", str(d)])
    assert p.returncode == 2 and match in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_nan_scores_and_swapped_files_are_refused(tmp_path):
    from tests.test_reliability_support import run_cli

    gt, results = random_lvis(4, n_img=4, dets_per_img=5)
    g, d = _write(tmp_path, gt, results)
    d.write_text(d.read_text().replace('"score": ' + str(results[0]["score"]), '"score": NaN', 1))
    p = run_cli(["eval", "--lvis-gt", str(g), "--lvis-dt", str(d)])
    assert p.returncode == 2 and "Traceback" not in p.stderr and str(d) in p.stderr, p.stderr
    g, d = _write(tmp_path, gt, results)
    p = run_cli(["eval", "--coco-gt", str(g), "--coco-dt", str(d)])  # LVIS passed as COCO
    assert p.returncode == 2 and "--lvis-gt" in p.stderr, p.stderr
