"""`coordbench eval --coco-gt instances.json --coco-dt results.json`: any detector, COCO rules.

pycocotools semantics [ARCH-COCO-PAIR]: GT `area` as given (it decides APs/m/l), `iscrowd`
regions matched last and ignored, the official category ids, float xywh boxes, `score` as given,
maxDets 1/10/100, every GT image evaluated (images without detections too). Results whose
category is not in the GT are left out, as COCOeval never looks at them. The `faster` scorer is
the numpy matcher (crowd rules included; also what the bootstrap resamples), held to pycocotools
at 1e-12 by tests.
"""

from __future__ import annotations

import logging
import math
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np

from coordbench.errors import DataError
from coordbench.metrics.bootstrap import resample_counts
from coordbench.metrics.coco import STAT_NAMES, coco_stats_eval
from coordbench.metrics.coco_images import per_image_eval
from coordbench.metrics.coco_match import CocoDets
from coordbench.metrics.eval_files import per_class_csv
from coordbench.metrics.resample import CocoResampler
from coordbench.rundir import files as A
from coordbench.rundir.layout import METRICS, PER_CLASS

log = logging.getLogger("coordbench")


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def load_gt(path: Path) -> dict[str, Any]:
    doc = A.read_json(path)
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DataError(
            f"{path}: expected a COCO instances object with images/annotations/categories"
        )
    _check_annotations(path, doc)
    return doc


def load_coco_gt(path: Path) -> dict[str, Any]:
    """A COCO instances file for `--coco-gt`; an LVIS file is refused (its federated rules
    differ: score it with --lvis-gt)."""
    doc = load_gt(path)
    if any(isinstance(im, dict) and "neg_category_ids" in im for im in doc["images"][:1000]):
        raise DataError(
            f"{path} is an LVIS annotation file (images carry neg_category_ids): COCO rules would "
            "count every unlisted category as absent; score it with --lvis-gt/--lvis-dt"
        )
    return doc


def _check_ids(path: Path, doc: dict[str, Any]) -> tuple[set[Any], set[Any]]:
    """Image and category ids, each unique (COCO indexes them by id: a duplicate silently
    replaces an entry and moves every number)."""
    out = []
    for key in ("images", "categories"):
        seen: set[Any] = set()
        for i, x in enumerate(doc[key]):
            xid = x.get("id") if isinstance(x, dict) else None
            if xid is None:
                raise DataError(f"{path}: {key} entry {i} has no `id`")
            if xid in seen:
                what = "image" if key == "images" else "category"
                raise DataError(f"{path}: duplicate {what} id {xid!r} ({key} entry {i})")
            seen.add(xid)
        out.append(seen)
    return out[0], out[1]


def _check_annotations(path: Path, doc: dict[str, Any]) -> None:
    images, cats = _check_ids(path, doc)
    ann_ids: set[Any] = set()
    for i, a in enumerate(doc["annotations"]):
        if isinstance(a, dict) and "id" in a:
            if a["id"] in ann_ids:
                raise DataError(
                    f"{path}: duplicate annotation id {a['id']!r} (annotation {i}): pycocotools "
                    "indexes annotations by id, so the duplicate would replace the first and "
                    "change AP without a word; give every annotation its own id"
                )
            ann_ids.add(a["id"])
        if isinstance(a, dict) and a.get("category_id") not in cats and "category_id" in a:
            raise DataError(
                f"{path}: annotation {i} has category_id {a['category_id']!r}, not in categories"
            )
        if isinstance(a, dict) and "image_id" in a and a["image_id"] not in images:
            raise DataError(
                f"{path}: annotation {i} is on image_id {a['image_id']!r}, not in images"
            )
        if not isinstance(a, dict) or not all(k in a for k in ("image_id", "category_id", "bbox")):
            raise DataError(f"{path}: annotation {i} needs image_id, category_id and bbox")
        box = a["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(map(_number, box))):
            raise DataError(f"{path}: annotation {i} has a bad bbox {box!r}")
        if not _number(a.get("area")):
            raise DataError(f"{path}: annotation {i} has no numeric `area` (COCO rule)")


def valid_columns(doc: list[Any]) -> bool:
    """Every result a dict with a 4-number bbox and a finite number score (C-level passes;
    `load_results` walks the list to name the first bad one when this says no)."""
    get = dict.get
    if set(map(type, doc)) - {dict}:
        return False
    boxes = list(map(get, doc, repeat("bbox")))
    if set(map(type, boxes)) != {list} or set(map(len, boxes)) != {4}:
        return False
    if set(map(type, chain.from_iterable(boxes))) - {int, float}:
        return False
    if set(map(type, map(get, doc, repeat("score")))) - {int, float}:
        return False
    flat = np.fromiter(chain.from_iterable(boxes), np.float64, 4 * len(boxes))
    scores = np.fromiter(map(get, doc, repeat("score")), np.float64, len(doc))
    return bool(np.isfinite(flat).all() and np.isfinite(scores).all())


def first_bad_result(path: Path, doc: list[Any], images: set[Any], offset: int = 0) -> None:
    """Raise a DataError naming the first result COCOeval could not use (`offset`: the index
    of `doc`'s first element in the file)."""
    for i, r in enumerate(doc, offset):
        if not isinstance(r, dict):
            raise DataError(f"{path}: result {i} is not an object")
        box, score = r.get("bbox"), r.get("score")
        if not (isinstance(box, list) and len(box) == 4 and all(map(_number, box))):
            raise DataError(f"{path}: result {i} has a bad bbox {box!r}")
        if not _number(score):
            raise DataError(f"{path}: result {i} has a non-numeric score {score!r}")
        if r.get("image_id") not in images:
            raise DataError(
                f"{path}: result {i} refers to image_id {r.get('image_id')!r}, not in GT"
            )


def load_results(path: Path, gt: dict[str, Any]) -> CocoDets:
    """Bbox results as COCOeval uses them; results of categories the GT lacks are dropped."""
    doc = A.read_json(path)
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a JSON list of detection results")
    images = {im["id"] for im in gt["images"]}
    if not (valid_columns(doc) and images.issuperset(map(dict.get, doc, repeat("image_id")))):
        first_bad_result(path, doc, images)  # the fast checks said no: name the culprit
    cats = {c["id"] for c in gt["categories"]}
    known = list(map(cats.__contains__, map(dict.get, doc, repeat("category_id"))))
    kept = [r for r, k in zip(doc, known, strict=True) if k]
    if len(kept) < len(doc):
        unknown = sorted(
            {r.get("category_id") for r, k in zip(doc, known, strict=True) if not k}, key=str
        )
        log.warning(
            "%s: %d of %d results have categories not in the GT (%s%s) and are left out, as "
            "COCOeval never looks at them",
            path,
            len(doc) - len(kept),
            len(doc),
            ", ".join(map(str, unknown[:5])),
            ", ..." if len(unknown) > 5 else "",
        )
    return CocoDets.from_dicts(kept)


def bootstrap_ap(
    gt: dict[str, Any],
    dets: CocoDets,
    n: int,
    ap: float,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, Any]:
    """CI of mAP over images resampled with replacement (crowd-free sets).

    AP of a resample is biased upward (the interpolated precision envelope is a max, and a
    resample has fewer distinct images), often by more than its spread, so the plain percentile
    interval can miss AP itself. `lo`/`hi` are the percentiles shifted by the bootstrap bias
    (mean of the resamples - AP); the raw percentiles and the bias are reported too.
    """
    pie = per_image_eval(gt, dets, "numpy", ("all",))
    w = resample_counts(pie.n_images, n, np.random.default_rng(seed))
    boot = CocoResampler(pie, ("AP",)).evaluate(w)["AP"]
    q_lo, q_hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return {
        "n_resamples": n,
        "seed": seed,
        "ci": ci,
        "method": "percentile, bias-corrected",
        "lo": float(q_lo - (boot.mean() - ap)),
        "hi": float(q_hi - (boot.mean() - ap)),
        "percentile": [float(q_lo), float(q_hi)],
        "bias": float(boot.mean() - ap),
        "std": float(boot.std(ddof=1)) if n > 1 else None,
    }


def score_coco_pair(
    gt_path: Path,
    dt_path: Path,
    *,
    out: Path | None = None,
    scorer: str = "faster",
    bootstrap: int = 0,
) -> str:
    """Score the pair, write metrics.json + per_class.csv under `out`, return the summary."""
    gt = load_coco_gt(gt_path)
    dets = load_results(dt_path, gt)
    stats, per_class, _ = coco_stats_eval(gt, dets, scorer, empty_is_zero=False)
    doc: dict[str, Any] = {
        "metrics": {f"bbox_{n}": s for n, s in zip(STAT_NAMES, stats, strict=True)},
        "per_class_ap": {n: (None if math.isnan(v) else v) for n, v in per_class},
        "n_images": len(gt["images"]),
        "n_detections": len(dets),
        "scorer": scorer,
    }
    if bootstrap:
        doc["bootstrap_AP"] = bootstrap_ap(gt, dets, bootstrap, stats[0])
    lines = [f"scored {len(dets)} detections on {len(gt['images'])} images ({gt_path.name})"]
    lines += [f"  {n:<6} {s:.4f}" for n, s in zip(STAT_NAMES, stats, strict=True)]
    if bootstrap:
        b = doc["bootstrap_AP"]
        lines.append(
            f"  AP {b['ci']:.0%} bootstrap CI [{b['lo']:.4f}, {b['hi']:.4f}] ({bootstrap})"
        )
    if out is not None:
        A.write_json(out / METRICS, doc)
        A.write_bytes_atomic(out / PER_CLASS, per_class_csv(per_class).encode("utf-8"))
        lines.append(f"-> {out}")
    return "\n".join(lines)
