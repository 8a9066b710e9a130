"""LVIS v1 -> a federated preset folder: records with the image's federated lists.

`lvis_v1_val.json` holds COCO 2017 images (from val2017 and train2017: `coco_url` says which)
with, per image, `neg_category_ids` (verified absent) and `not_exhaustive_category_ids`
(annotated, but not every instance), and per category a `frequency` (r / c / f) and `synonyms`.
Each record keeps both lists and `metadata.dataset_policy = "lvis_federated"`, as upstream
writes LVIS records; `categories.json` keeps id, name, frequency and synonyms, which the `lvis`
task reads for its scorer (r/c/f AP) and its label mapping (names and synonyms). Images without
annotations are kept: their negative lists still score false positives. Boxes pass the same
checks as `data coco` (zero-size and out-of-image boxes dropped and counted), and the images go
through the shared `coco.build_preset` (resize under the rescale preset, atomic publish).
[ARCH-LVIS]
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from coordbench.data.coco import (
    COCO_LISTS,
    ConversionStats,
    PresetSpec,
    build_preset,
    check_out_dir,
    keep_ann,
    read_json_object,
)
from coordbench.data.resize import MIN_PIXELS
from coordbench.errors import DataError

DATASET_POLICY = "lvis_federated"
ANNOTATION_NAMES = ("lvis_v1_val.json", "annotations/lvis_v1_val.json")


def find_annotations(lvis_root: Path, annotations: Path | None) -> Path:
    if annotations is not None:
        return annotations
    for name in ANNOTATION_NAMES:
        if (lvis_root / name).is_file():
            return lvis_root / name
    raise DataError(
        f"no LVIS annotations under {lvis_root} (looked for {', '.join(ANNOTATION_NAMES)}); "
        "pass --annotations"
    )


def load_lvis(path: Path) -> dict[str, Any]:
    doc = read_json_object(path, COCO_LISTS, "an LVIS file")
    for im in doc["images"][:1]:
        if "neg_category_ids" not in im or "not_exhaustive_category_ids" not in im:
            raise DataError(
                f"{path}: images carry no neg_category_ids / not_exhaustive_category_ids: a COCO "
                "instances file? build it with `coordbench data coco`"
            )
    for c in doc["categories"]:
        if c.get("frequency") not in ("r", "c", "f"):
            raise DataError(f"{path}: category {c.get('id')!r} has no LVIS frequency (r/c/f)")
    return doc


def _source(img: dict[str, Any]) -> tuple[str, str]:
    """(image folder, file name) from `coco_url` (LVIS) or `file_name`."""
    url = img.get("coco_url") or img.get("file_name") or ""
    parts = PurePosixPath(str(url)).parts
    name = parts[-1] if parts else ""
    folder = parts[-2] if len(parts) > 1 and parts[-2] in ("val2017", "train2017") else "val2017"
    if not name or name in (".", ".."):
        raise DataError(f"image {img.get('id')!r}: no usable coco_url/file_name {url!r}")
    return folder, name


FEDERATED_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def _id_list(img: dict[str, Any], key: str, cats: dict[Any, str]) -> list[int]:
    """An image's federated list, checked: a list of the file's category ids. (Only the first
    image is checked on loading; a later one without the list is named here, not a KeyError.)"""
    ids = img.get(key)
    if not isinstance(ids, list):
        raise DataError(
            f"image {img.get('id')!r} has no `{key}` list: every LVIS image needs "
            f"{' and '.join(FEDERATED_LISTS)}"
        )
    unknown = [c for c in ids if isinstance(c, bool) or c not in cats]
    if unknown:
        raise DataError(f"image {img.get('id')!r}: {key} names unknown category {unknown[0]!r}")
    return list(ids)


def lvis_raw_records(doc: dict[str, Any], stats: ConversionStats) -> list[dict[str, Any]]:
    cats = {c["id"]: str(c["name"]) for c in doc["categories"]}
    by_image: dict[Any, list[dict]] = {}
    stats.anns_total = len(doc["annotations"])
    for a in doc["annotations"]:
        if isinstance(a, dict):
            by_image.setdefault(a.get("image_id"), []).append(a)
    out = []
    stats.images_total = len(doc["images"])
    for img in sorted(doc["images"], key=lambda im: im["id"]):
        w, h = img.get("width"), img.get("height")
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise DataError(f"image {img.get('id')!r}: needs a positive integer width and height")
        folder, name = _source(img)
        anns = sorted(by_image.get(img["id"], []), key=lambda a: int(a.get("id", 0)))
        objs = [o for a in anns if (o := keep_ann(a, (w, h), cats, stats, False)) is not None]
        rel = f"images/{folder}/{name}"
        out.append(
            {
                "images": [rel],
                "objects": objs,
                "width": w,
                "height": h,
                "image_id": img["id"],
                "file_name": rel,
                "metadata": {"source": "lvis_v1", "split": "val", "dataset_policy": DATASET_POLICY},
                **{key: _id_list(img, key, cats) for key in FEDERATED_LISTS},
            }
        )
    return out


def convert_lvis(
    lvis_root: str | Path,
    *,
    out_dir: str | Path,
    annotations: str | Path | None = None,
    coco_root: str | Path | None = None,
    budget: int = 768,
    factor: int = 32,
    limit: int | None = None,
    workers: int = 2,
    progress: bool = True,
    algorithm: str = "current",
    min_pixels: int = MIN_PIXELS,
) -> ConversionStats:
    """Build a federated LVIS preset folder (`val.jsonl` + norm/coord variants, images,
    categories.json with frequency and synonyms) from LVIS v1 val and the COCO 2017 images."""
    if limit is not None and limit < 0:
        raise DataError(f"--limit must be >= 0, got {limit}")
    root = Path(lvis_root)
    ann_path = find_annotations(root, Path(annotations) if annotations else None)
    images_root = Path(coco_root) if coco_root else root
    out = Path(out_dir)
    check_out_dir(out, root)
    doc = load_lvis(ann_path)
    stats = ConversionStats(out_dir=str(out))
    candidates = lvis_raw_records(doc, stats)
    cats_doc = [
        {
            "id": c["id"],
            "name": str(c["name"]),
            "frequency": c["frequency"],
            "synonyms": [str(s) for s in c.get("synonyms") or []],
        }
        for c in sorted(doc["categories"], key=lambda c: c["id"])
    ]
    params = {
        "lvis_root": str(root),
        "annotations": str(ann_path),
        "factor": factor,
        "budget": budget,
        "max_pixels": factor * factor * budget,
        "min_pixels": min_pixels,
        "algorithm": algorithm,
        "limit": limit,
    }
    spec = PresetSpec(images_root, "val2017", out, "val", factor, budget, min_pixels, algorithm)
    names = {c["id"]: c["name"] for c in cats_doc}
    return build_preset(
        spec,
        candidates,
        names,
        stats,
        params,
        limit=limit,
        workers=workers,
        skip_bad=False,
        progress=progress,
        label="lvis",
        categories_doc=cats_doc,
    )
