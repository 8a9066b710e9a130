"""RefCOCO / RefCOCO+ / RefCOCOg -> a grounding preset folder (one record per expression).

Two source layouts, both read without running foreign code [ARCH-GROUNDING]:
- MDETR's COCO-style JSON (`final_refcoco_val.json`, ...): one image entry per expression with
  `caption`, `original_id` (the COCO image) and one annotation;
- the refer layout (lichengunc/refer): `refs(unc).p` / `refs(umd).p` plus `instances.json`; the
  pickle is read by an unpickler that resolves no class at all, so only builtin containers and
  scalars load and anything else is refused with the class named.

The sample id is the expression id (MDETR's entry id / refer's `sent_id`), since one image holds
many expressions. Images are resized under the rescale preset exactly as `data coco` does
(`coco.build_preset`, each image once however many expressions share it); the record keeps the
GT box in preset pixels (`objects`, what the parser's frame and the gallery use) and in
original pixels (`gt_orig_bbox`, `orig_width`/`orig_height`: what Acc@0.5 is scored on).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench.data.coco import (
    EPS,
    ConversionStats,
    PresetSpec,
    build_preset,
    check_out_dir,
    read_json_object,
)
from coordbench.data.resize import MIN_PIXELS
from coordbench.errors import DataError

# the 8 evaluation splits of the three data sets (refer's partitions: unc for RefCOCO/RefCOCO+,
# umd for RefCOCOg), plus the training split each has
SPLITS = {
    "refcoco": ("val", "testA", "testB", "train"),
    "refcoco+": ("val", "testA", "testB", "train"),
    "refcocog": ("val", "test", "train"),
}
EVAL_SPLITS = sum(len([s for s in v if s != "train"]) for v in SPLITS.values())  # 8


class _NoClassUnpickler(pickle.Unpickler):
    """Builtin containers and scalars need no class lookup; every lookup is refused."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle's hook
        raise DataError(
            f"refusing to unpickle {module}.{name}: a refs pickle holds only lists, dicts, "
            "strings and numbers (a pickle that asks for a class can run arbitrary code)"
        )


def load_refs_pickle(path: Path) -> list[dict[str, Any]]:
    """refer's `refs(unc).p`, through the class-free unpickler."""
    try:
        data = _NoClassUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="latin1").load()
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"cannot read refs pickle {path}: {type(e).__name__}: {e}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a list of ref dicts, got {type(data).__name__}")
    return data


def _json(path: Path) -> dict[str, Any]:
    return read_json_object(path)


@dataclass(frozen=True)
class Expression:
    """One referring expression and its one box, in the original image's pixels."""

    expr_id: int
    query: str
    file_name: str
    width: int
    height: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    source_image_id: int | None
    ref_id: int | None


def _xyxy(bbox: Any, where: str) -> tuple[float, float, float, float]:
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise DataError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise DataError(f"{where}: bbox must be 4 numbers, got {bbox!r}") from None
    if not (w > EPS and h > EPS):
        raise DataError(f"{where}: degenerate bbox {bbox!r}")
    return x, y, x + w, y + h


def _int(v: Any, where: str, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DataError(f"{where}: `{key}` must be an int, got {v!r}")
    return v


def read_mdetr(path: Path) -> list[Expression]:
    """MDETR's grounding JSON: one image entry per expression, its one annotation."""
    doc = _json(path)
    images, anns = doc.get("images"), doc.get("annotations")
    if not isinstance(images, list) or not isinstance(anns, list):
        raise DataError(f"{path}: not an MDETR grounding file (needs `images` and `annotations`)")
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        if isinstance(a, dict):
            by_image.setdefault(a.get("image_id"), []).append(a)
    out = []
    for img in images:
        where = f"{path}: image entry {img.get('id') if isinstance(img, dict) else img!r}"
        if not isinstance(img, dict) or not isinstance(img.get("caption"), str):
            raise DataError(f"{where}: expected an object with a `caption` (the expression)")
        iid = _int(img.get("id"), where, "id")
        mine = by_image.get(iid, [])
        if len(mine) != 1:
            raise DataError(f"{where}: expected exactly one annotation, found {len(mine)}")
        out.append(
            Expression(
                expr_id=iid,
                query=img["caption"],
                file_name=str(img.get("file_name", "")),
                width=_int(img.get("width"), where, "width"),
                height=_int(img.get("height"), where, "height"),
                box=_xyxy(mine[0].get("bbox"), where),
                source_image_id=img.get("original_id"),
                ref_id=None,
            )
        )
    return out


def read_refer(refs_path: Path, instances_path: Path, split: str) -> list[Expression]:
    """refer's layout: every sentence of every ref of `split`, its box from instances.json."""
    refs = load_refs_pickle(refs_path)
    inst = _json(instances_path)
    images = {i["id"]: i for i in inst.get("images") or [] if isinstance(i, dict) and "id" in i}
    anns = {a["id"]: a for a in inst.get("annotations") or [] if isinstance(a, dict) and "id" in a}
    out = []
    for ref in refs:
        if ref.get("split") != split:
            continue
        where = f"{refs_path}: ref {ref.get('ref_id')!r}"
        ann, img = anns.get(ref.get("ann_id")), images.get(ref.get("image_id"))
        if ann is None or img is None:
            raise DataError(
                f"{where}: ann {ref.get('ann_id')!r} or image {ref.get('image_id')!r} is not in "
                f"{instances_path}"
            )
        box = _xyxy(ann.get("bbox"), where)
        for sent in ref.get("sentences") or []:
            if not isinstance(sent, dict):
                continue
            out.append(
                Expression(
                    expr_id=_int(sent.get("sent_id"), where, "sent_id"),
                    query=str(sent.get("sent") or sent.get("raw") or ""),
                    file_name=str(img.get("file_name", "")),
                    width=_int(img.get("width"), where, "width"),
                    height=_int(img.get("height"), where, "height"),
                    box=box,
                    source_image_id=img.get("id"),
                    ref_id=ref.get("ref_id"),
                )
            )
    if not out:
        raise DataError(f"{refs_path}: no refs in split {split!r}")
    return out


def _raw_record(e: Expression, image_split: str, dataset: str, split: str) -> dict[str, Any]:
    name = Path(e.file_name).name
    if not name or name in (".", ".."):
        raise DataError(f"expression {e.expr_id}: no usable image file_name {e.file_name!r}")
    x1, y1, x2, y2 = e.box
    if x1 < -EPS or y1 < -EPS or x2 > e.width + EPS or y2 > e.height + EPS:
        raise DataError(
            f"expression {e.expr_id}: box {list(e.box)} is outside its {e.width}x{e.height} image"
        )
    box = [max(0.0, x1), max(0.0, y1), min(float(e.width), x2), min(float(e.height), y2)]
    rel = f"images/{image_split}/{name}"
    return {
        "images": [rel],
        "objects": [{"bbox_2d": box, "desc": e.query}],
        "width": e.width,
        "height": e.height,
        "image_id": e.expr_id,
        "file_name": rel,
        "metadata": {"source": dataset, "split": split},
        "query": e.query,
        "split": split,
        "ref_id": e.ref_id,
        "source_image_id": e.source_image_id,
        "gt_orig_bbox": box,
    }


def convert_refcoco(
    coco_root: str | Path,
    *,
    out_dir: str | Path,
    annotations: str | Path | None = None,
    refs: str | Path | None = None,
    instances: str | Path | None = None,
    dataset: str = "refcoco",
    split: str = "val",
    image_split: str = "train2014",
    budget: int = 768,
    factor: int = 32,
    limit: int | None = None,
    progress: bool = True,
    algorithm: str = "current",
    min_pixels: int = MIN_PIXELS,
) -> ConversionStats:
    """Build a grounding preset folder (`val.jsonl` + norm/coord variants, images) from MDETR's
    JSON (`annotations`) or refer's pickle + instances (`refs`, `instances`); the images come
    from `coco_root/image_split/` (RefCOCO/+/g all use COCO train2014)."""
    if dataset not in SPLITS:
        raise DataError(f"--dataset must be one of {', '.join(SPLITS)}, got {dataset!r}")
    if split not in SPLITS[dataset]:
        raise DataError(f"{dataset} has splits {', '.join(SPLITS[dataset])}; got {split!r}")
    if (annotations is None) == (refs is None):
        raise DataError("pass either --annotations (MDETR JSON) or --refs with --instances")
    if limit is not None and limit < 0:
        raise DataError(f"--limit must be >= 0, got {limit}")
    if annotations is not None:
        exprs = read_mdetr(Path(annotations))
    else:
        if instances is None:
            raise DataError("--refs needs --instances (the refer layout's instances.json)")
        exprs = read_refer(Path(refs), Path(instances), split)
    root, out = Path(coco_root), Path(out_dir)
    check_out_dir(out, root)  # the same rules as `data coco --out`
    stats = ConversionStats(out_dir=str(out))
    stats.images_total = len(exprs)
    candidates = [_raw_record(e, image_split, dataset, split) for e in exprs]
    params = {
        "coco_root": str(root),
        "source": str(annotations or refs),
        "dataset": dataset,
        "split": split,
        "factor": factor,
        "budget": budget,
        "max_pixels": factor * factor * budget,
        "min_pixels": min_pixels,
        "algorithm": algorithm,
        "limit": limit,
    }
    spec = PresetSpec(root, image_split, out, split, factor, budget, min_pixels, algorithm)
    # one worker: expressions share images, and each image is resized once, then reused
    return build_preset(
        spec,
        candidates,
        {},
        stats,
        params,
        limit=limit,
        workers=1,
        skip_bad=False,
        progress=progress,
        label=dataset,
    )
