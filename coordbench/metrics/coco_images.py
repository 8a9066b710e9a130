"""COCOeval's per-(image, category, area) evaluation as flat numpy arrays, computed once.

`evaluateImg` of one image and category only looks at that image's GT and detections, so its
output can be reused for any multiset of images; only `accumulate` depends on the image set
(`coordbench.metrics.resample`). Two producers give the same arrays: coordbench's vectorised
matcher (`coco_match`, the default, seconds for COCO-sized sets) and pycocotools' own
`evaluateImg` (the reference the tests hold it to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coordbench.errors import ConfigError
from coordbench.metrics.coco_match import AreaEval, CocoDets, CocoTables
from coordbench.metrics.cocoeval_run import run_cocoeval

AREA_NAMES = ("all", "small", "medium", "large")  # pycocotools Params.areaRngLbl order
METHODS = ("numpy", "pycocotools")


@dataclass
class PerImageEval:
    n_images: int
    n_cats: int
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    areas: dict[str, AreaEval]


def _decode_area(ev: Any, a: int, n_thr: int) -> AreaEval:
    """pycocotools `evalImgs` of area index `a` (layout [category][area][image]) as arrays."""
    n_img = len(ev.params.imgIds)
    rows: dict[str, list] = {k: [] for k in ("cat", "img", "rank", "score", "tp", "ign", "pig")}
    for k in range(len(ev.params.catIds)):
        for i in range(n_img):
            e = ev.evalImgs[(k * len(AREA_NAMES) + a) * n_img + i]
            if e is None:
                continue
            n_gt = int(np.sum(np.logical_not(e["gtIgnore"])))
            if n_gt:
                rows["pig"].append((i, k, n_gt))
            d = len(e["dtScores"])
            if d:
                ign = np.asarray(e["dtIgnore"], bool).reshape(n_thr, d)
                rows["cat"].append(np.full(d, k))
                rows["img"].append(np.full(d, i))
                rows["rank"].append(np.arange(d))
                rows["score"].append(np.asarray(e["dtScores"], float))
                rows["tp"].append((np.asarray(e["dtMatches"]).reshape(n_thr, d) > 0) & ~ign)
                rows["ign"].append(ign)
    one = lambda key: np.concatenate(rows[key]) if rows[key] else np.zeros(0, np.int64)  # noqa: E731
    two = lambda key: np.concatenate(rows[key], axis=1) if rows[key] else np.zeros((n_thr, 0), bool)  # noqa: E731
    pig = np.array(rows["pig"], dtype=np.int64).reshape(-1, 3)
    return AreaEval(
        one("cat"),
        one("img"),
        one("rank"),
        one("score").astype(float),
        two("tp"),
        two("ign"),
        pig[:, 0],
        pig[:, 1],
        pig[:, 2],
    )


def per_image_eval(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]] | CocoDets,
    method: str = "numpy",
    areas: tuple[str, ...] = AREA_NAMES,
) -> PerImageEval:
    """Per-image evaluation of the requested area ranges (maxDets 100, default IoU thresholds)."""
    from pycocotools.cocoeval import Params

    p = Params(iouType="bbox")
    n_img = len({im["id"] for im in coco_gt["images"]})
    n_cats = len({c["id"] for c in coco_gt["categories"]})
    if method == "numpy":
        tables = CocoTables(coco_gt, coco_preds)
        out = {name: tables.area_eval(name, p.iouThrs) for name in areas}
    elif method == "pycocotools":
        if not coco_preds:  # loadRes refuses an empty list; the numpy matcher gives the same arrays
            return per_image_eval(coco_gt, coco_preds, "numpy", areas)
        if isinstance(coco_preds, CocoDets):
            coco_preds = coco_preds.dicts()
        ev = run_cocoeval(coco_gt, coco_preds, "pycocotools", steps=("evaluate",))
        out = {name: _decode_area(ev, AREA_NAMES.index(name), len(p.iouThrs)) for name in areas}
    else:
        raise ConfigError(f"expected `method` to be one of {METHODS} but got {method!r}")
    return PerImageEval(n_img, n_cats, np.asarray(p.iouThrs), np.asarray(p.recThrs), out)
