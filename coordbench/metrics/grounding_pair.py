"""`coordbench eval --task refcoco --coco-gt G.json --coco-dt results.json`: any model's
COCO-format results against MDETR-style grounding GT (one image entry and one annotation per
expression), scored by the grounding task's rule (top-1 box by score, Acc@0.5) [ARCH-GROUNDING].
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

from coordbench.errors import DataError
from coordbench.metrics.grounding import evaluate_grounding, write_grounding_eval
from coordbench.rundir.guard import refuse_input_as_output


def _load(path: Path, what: str) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except orjson.JSONDecodeError as e:
        raise DataError(
            f"{what} {path} is not valid JSON (NaN/Infinity are not JSON): {e}"
        ) from None


def _xyxy(bbox: Any, where: str) -> list[float]:
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise DataError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in bbox):
        raise DataError(f"{where}: bbox must be 4 numbers, got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise DataError(f"{where}: bbox has a non-finite value: {bbox!r}")
    return [x, y, x + w, y + h]


def grounding_records(gt: Any, dt: Any, gt_path: Path, dt_path: Path) -> list[dict[str, Any]]:
    """One record per GT expression, its results (in file order) as predictions."""
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list):
        raise DataError(f"{gt_path}: not MDETR-style grounding GT (no `images` list)")
    if not isinstance(dt, list):
        raise DataError(f"{dt_path}: COCO results must be a JSON list of detections")
    anns: dict[Any, list[dict]] = {}
    for a in gt.get("annotations") or []:
        if isinstance(a, dict):
            anns.setdefault(a.get("image_id"), []).append(a)
    recs: list[dict[str, Any]] = []
    index: dict[Any, int] = {}
    for img in gt["images"]:
        iid, rec = _gt_record(img, anns, gt_path)
        if iid in index:
            raise DataError(f"{gt_path}: image {iid!r}: duplicate image id")
        index[iid] = len(recs)
        recs.append(rec)
    for i, d in enumerate(dt):
        image_id, pred = _result(d, f"{dt_path}: result {i}", index, gt_path)
        recs[index[image_id]]["pred"].append(pred)
    return recs


def _gt_record(img: Any, anns: dict[Any, list[dict]], gt_path: Path) -> tuple[Any, dict[str, Any]]:
    iid = img.get("id") if isinstance(img, dict) else None
    where = f"{gt_path}: image {iid!r}"
    mine = anns.get(iid, [])
    if iid is None or len(mine) != 1:
        raise DataError(f"{where}: a grounding image needs an id and exactly one annotation")
    box = _xyxy(mine[0].get("bbox"), where)
    return iid, {
        "sample_id": str(iid),
        "image": img.get("file_name"),
        "width": img.get("width"),
        "height": img.get("height"),
        "gt": [{"type": "bbox_2d", "points": box, "desc": img.get("caption", "")}],
        "pred": [],
        "query": img.get("caption"),
        "split": img.get("split") or "all",
    }


def _result(d: Any, where: str, index: dict, gt_path: Path) -> tuple[Any, dict[str, Any]]:
    """One COCO result as (image id, prediction), checked."""
    if not isinstance(d, dict) or d.get("image_id") not in index:
        got = d.get("image_id") if isinstance(d, dict) else d
        raise DataError(f"{where} refers to image_id {got!r}, not in {gt_path}")
    score = d.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        raise DataError(f"{where}: score must be a finite number, got {score!r}")
    pred = {"type": "bbox_2d", "points": _xyxy(d.get("bbox"), where)}
    if score is not None:
        pred["score"] = float(score)
    return d["image_id"], pred


def score_grounding_pair(gt_path: Path, dt_path: Path, out: Path | None) -> str:
    gt, dt = _load(gt_path, "grounding GT"), _load(dt_path, "results")
    recs = grounding_records(gt, dt, gt_path, dt_path)
    result = evaluate_grounding(recs)
    out_dir = out or dt_path.parent / "eval"
    refuse_input_as_output(out_dir, [gt_path, dt_path])
    write_grounding_eval(result, out_dir)
    m = result.metrics
    lines = [f"scored {len(recs)} expressions of {gt_path} with {dt_path} -> {out_dir}", ""]
    lines += [
        f"  Acc@0.5   {m['grounding_Acc@0.5']:.4f}",
        f"  Acc@0.75  {m['grounding_Acc@0.75']:.4f}",
        f"  mIoU      {m['grounding_mIoU']:.4f}",
        f"  no box    {m['grounding_no_box']} of {m['grounding_n']}",
    ]
    for name, s in result.per_split.items():
        lines.append(f"  split {name}: Acc@0.5 {s['grounding_Acc@0.5']:.4f} (n {s['grounding_n']})")
    return "\n".join(lines)
