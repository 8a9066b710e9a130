"""`coordbench eval --coco-gt/--coco-dt` against pycocotools itself on random COCO pairs.

The sets have float boxes, crowd regions with their own `area`, empty images, non-contiguous
category ids, results on a category the GT lacks and tied scores; the oracle is pycocotools'
COCOeval run here on the same files, so the test fails on any deviation beyond 1e-12.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.metrics.coco import STAT_NAMES

CAT_IDS = (1, 3, 7, 18, 90)


def random_pair(seed: int, crowd: bool) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(40):
        w, h = float(rng.integers(200, 640)), float(rng.integers(200, 480))
        images.append({"id": 1000 + 7 * i, "width": w, "height": h, "file_name": f"{i}.jpg"})
        if i % 9 == 0:
            continue  # an image without GT and detections
        boxes = []
        for _ in range(rng.integers(0, 8)):
            bw, bh = rng.uniform(2, w / 2), rng.uniform(2, h / 2)
            box = [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]
            is_crowd = int(crowd and rng.random() < 0.15)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": 1000 + 7 * i,
                    "category_id": int(rng.choice(CAT_IDS)),
                    "bbox": box,
                    "area": float(bw * bh * rng.uniform(0.4, 1.0)),  # a mask area, not w*h
                    "iscrowd": is_crowd,
                }
            )
            boxes.append((box, anns[-1]["category_id"]))
        for box, cat in boxes:
            for _ in range(rng.integers(0, 3)):
                jit = np.asarray(box) + rng.normal(0, 0.1, 4) * [box[2], box[3], box[2], box[3]]
                jit[2:] = np.maximum(jit[2:], 1.0)
                c = cat if rng.random() < 0.8 else int(rng.choice(CAT_IDS))
                score = round(float(rng.uniform()), 1)  # ties on purpose
                dets.append(
                    {
                        "image_id": 1000 + 7 * i,
                        "category_id": c,
                        "bbox": jit.tolist(),
                        "score": score,
                    }
                )
        for _ in range(rng.integers(0, 5)):
            dets.append(
                {
                    "image_id": 1000 + 7 * i,
                    "category_id": int(rng.choice(CAT_IDS)),
                    "bbox": [rng.uniform(0, w / 2), rng.uniform(0, h / 2), 30.5, 20.25],
                    "score": float(rng.uniform()),
                }
            )
    cats = [{"id": c, "name": f"class{c}"} for c in reversed(CAT_IDS)]  # not in id order
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycocotools_eval(gt: dict, dets: list) -> tuple[np.ndarray, dict[str, float]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = json.loads(json.dumps(gt))
        g.createIndex()
        ev = COCOeval(g, g.loadRes(json.loads(json.dumps(dets))), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for k, cid in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        p = p[p > -1]
        per_class[f"class{cid}"] = float(np.mean(p)) if p.size else None
    return np.asarray(ev.stats[:12]), per_class


def eval_pair(tmp_path: Path, gt: dict, dets: list, *extra: str):
    """Write the pair as gt.json / dt.json and run `coordbench eval --coco-gt --coco-dt`."""
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    args = ["eval", "--coco-gt", str(tmp_path / "gt.json"), "--coco-dt", str(tmp_path / "dt.json")]
    return CliRunner().invoke(main, [*args, *extra])


@pytest.mark.parametrize("crowd", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_pair_matches_pycocotools(tmp_path: Path, seed: int, crowd: bool) -> None:
    gt, dets = random_pair(seed, crowd)
    assert any(a["iscrowd"] for a in gt["annotations"]) == crowd
    out = tmp_path / "out"
    r = eval_pair(tmp_path, gt, dets, "--out", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "metrics.json").read_text())
    ours = np.array([doc["metrics"][f"bbox_{n}"] for n in STAT_NAMES])
    ref, ref_class = pycocotools_eval(gt, dets)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert doc["per_class_ap"].keys() == ref_class.keys()
    for name, ap in ref_class.items():
        if ap is None:
            assert doc["per_class_ap"][name] is None
        else:
            assert doc["per_class_ap"][name] == pytest.approx(ap, abs=1e-12)
    assert (out / "per_class.csv").read_text().startswith("category,AP\n")


def test_coco_pair_bootstrap_ci_brackets_ap(tmp_path: Path) -> None:
    gt, dets = random_pair(3, crowd=False)
    out = tmp_path / "out"
    r = eval_pair(tmp_path, gt, dets, "--out", str(out), "--bootstrap", "50")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "metrics.json").read_text())
    b = doc["bootstrap_AP"]
    assert b["n_resamples"] == 50 and b["lo"] < b["hi"]
    assert b["lo"] <= doc["metrics"]["bbox_AP"] <= b["hi"]


def test_coco_pair_bad_results_name_the_file(tmp_path: Path) -> None:
    gt, _ = random_pair(0, crowd=False)
    bad = [{"image_id": 1000, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}]
    r = eval_pair(tmp_path, gt, bad)
    assert r.exit_code != 0
    assert "dt.json" in r.output and "bbox" in r.output
