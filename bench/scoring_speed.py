"""COCO scoring speed: pycocotools vs coordbench's scorer (faster-coco-eval), side by side.

A seeded COCO-sized synthetic set [ARCH-SCORER-SPEED]: 5000 images of 320-640 x 240-480 pixels,
Poisson(7) GT boxes each over 80 classes, 100 detections per image (jittered GT copies, 80 %
with the right class, the rest random false positives). Both scorers get the same COCO dicts,
built by coordbench from upstream-format records; the 12 stats must be identical.

    .venv/bin/python bench/scoring_speed.py [--images 5000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

COCO_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat "
    "baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl "
    "banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave "
    "oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)
COCO_NAMES = tuple(n.replace("_", " ") for n in COCO_NAMES.split())
N_CLASSES = len(COCO_NAMES)  # 80
DETS_PER_IMAGE = 100  # COCO maxDets
GT_PER_IMAGE = 7  # Poisson mean, close to COCO val2017 (7.3)


def _box(rng: np.random.Generator, w: int, h: int) -> list[int]:
    bw, bh = rng.integers(4, max(5, w // 2)), rng.integers(4, max(5, h // 2))
    x, y = rng.integers(0, w - bw), rng.integers(0, h - bh)
    return [int(x), int(y), int(x + bw), int(y + bh)]


def _jitter(rng: np.random.Generator, b: list[int], w: int, h: int) -> list[int]:
    bw, bh = b[2] - b[0], b[3] - b[1]
    d = rng.normal(0, 0.12, 4) * np.array([bw, bh, bw, bh])
    x1, y1 = np.clip(np.array(b[:2]) + d[:2], 0, [w - 2, h - 2]).round().astype(int)
    x2 = int(np.clip(round(b[2] + d[2]), x1 + 1, w - 1))
    y2 = int(np.clip(round(b[3] + d[3]), y1 + 1, h - 1))
    return [int(x1), int(y1), x2, y2]


def synthetic_records(
    n_images: int = 5000, seed: int = 0, dets: int = DETS_PER_IMAGE, pred_seed: int | None = None
) -> list[dict]:
    """Upstream-format scored records (gt_vs_pred_scored.jsonl lines).

    GT depends on `seed` only, predictions on `pred_seed` (default: `seed`), so two "runs" of
    one data set differ only in their predictions. Jittered GT copies score U(0.2, 1), random
    false positives U(0, 0.6): a scorer that ranks, as a trained detector's does.
    """
    g_rng = np.random.default_rng(seed)
    rng = np.random.default_rng([seed, pred_seed if pred_seed is not None else seed, 1])
    names = COCO_NAMES
    recs = []
    for i in range(n_images):
        w, h = int(g_rng.integers(320, 641)), int(g_rng.integers(240, 481))
        gt = [
            {
                "type": "bbox_2d",
                "points": _box(g_rng, w, h),
                "desc": names[g_rng.integers(N_CLASSES)],
            }
            for _ in range(g_rng.poisson(GT_PER_IMAGE))
        ]
        pred = []
        for g in gt[: dets // 3]:  # up to 3 jittered copies per GT, 80 % with the right class
            for _ in range(rng.integers(1, 4)):
                desc = g["desc"] if rng.random() < 0.8 else names[rng.integers(N_CLASSES)]
                pts = _jitter(rng, g["points"], w, h)
                pred.append(
                    {
                        "type": "bbox_2d",
                        "points": pts,
                        "desc": desc,
                        "score": float(rng.uniform(0.2, 1)),
                    }
                )
        while len(pred) < dets:  # random false positives
            pred.append(
                {
                    "type": "bbox_2d",
                    "points": _box(rng, w, h),
                    "desc": names[rng.integers(N_CLASSES)],
                    "score": float(rng.uniform(0, 0.6)),
                }
            )
        recs.append(
            {
                "image": f"synthetic/{i:06d}.jpg",
                "width": w,
                "height": h,
                "gt": gt,
                "pred": pred[:dets],
                "pred_score_source": "synthetic",
                "pred_score_version": 1,
            }
        )
    return recs


def pycocotools_stats(coco_gt: dict, coco_preds: list) -> np.ndarray:
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(coco_gt)
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(coco_preds)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from coordbench.metrics.coco import coco_stats, evaluate_coco
    from coordbench.metrics.ingest import new_counters, prepare_images
    from coordbench.metrics.semantic import Semantic

    t0 = time.perf_counter()
    recs = synthetic_records(args.images, args.seed)
    t1 = time.perf_counter()
    images = prepare_images(recs, new_counters())
    out = evaluate_coco(images, Semantic("unused"), 0.5, "faster", new_counters())
    t2 = time.perf_counter()
    n_gt, n_dt = len(out.coco_gt["annotations"]), len(out.coco_preds)
    print(
        f"synthetic set: {args.images} images, {n_gt} GT, {n_dt} detections, {N_CLASSES} classes "
        f"(generated in {t1 - t0:.1f} s; records -> COCO dicts + faster eval {t2 - t1:.1f} s)"
    )
    t3 = time.perf_counter()
    ref = pycocotools_stats(out.coco_gt, out.coco_preds)
    t4 = time.perf_counter()
    ours, _ = coco_stats(out.coco_gt, out.coco_preds, "faster")
    t5 = time.perf_counter()
    diff = float(np.max(np.abs(np.asarray(ours) - ref)))
    print(
        f"pycocotools  (loadRes+evaluate+accumulate+summarize): {t4 - t3:7.2f} s   AP {ref[0]:.6f}"
    )
    print(
        f"coordbench   (faster-coco-eval, same dicts):           "
        f"{t5 - t4:7.2f} s   AP {ours[0]:.6f}"
    )
    print(f"speed-up x{(t4 - t3) / (t5 - t4):.1f}; max |diff| over the 12 stats = {diff:.3g}")
    if diff > 1e-12:
        print("FAIL: the 12 stats differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
