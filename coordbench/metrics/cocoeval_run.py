"""Run a COCOeval of either backend (faster-coco-eval or pycocotools) on plain COCO dicts."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from coordbench.config.options import SCORERS
from coordbench.errors import ConfigError


def coco_copy(coco_gt: dict[str, Any]) -> dict[str, Any]:
    """A copy the COCO loaders may annotate in place (they add keys, never edit lists in place).
    An annotation without `iscrowd` is not a crowd region, as the numpy matcher reads it;
    pycocotools would stop with a KeyError there."""
    lists = {
        k: [dict(x) for x in coco_gt.get(k, [])] for k in ("images", "annotations", "categories")
    }
    for a in lists["annotations"]:
        a.setdefault("iscrowd", 0)
    return {**coco_gt, **lists}


def run_cocoeval(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]],
    scorer: str,
    steps: tuple[str, ...] = ("evaluate", "accumulate", "summarize"),
) -> Any:
    """A COCOeval of the chosen backend after running `steps`, quietly."""
    preds = [dict(p) for p in coco_preds]  # loadRes adds keys to each result
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        if scorer == "faster":
            from faster_coco_eval import COCO, COCOeval_faster

            gt = COCO(coco_copy(coco_gt))
            ev = COCOeval_faster(gt, gt.loadRes(preds), "bbox", print_function=lambda *a, **k: None)
        elif scorer == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            gt = COCO()
            gt.dataset = coco_copy(coco_gt)
            gt.createIndex()
            ev = COCOeval(gt, gt.loadRes(preds), "bbox")
        else:
            raise ConfigError(f"expected `scorer` to be one of {SCORERS} but got {scorer!r}")
        for step in steps:
            getattr(ev, step)()
    return ev
