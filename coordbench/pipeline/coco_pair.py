"""`coordbench eval --coco-gt instances.json --coco-dt results.json`: any detector, COCO rules.

pycocotools semantics [ARCH-COCO-PAIR]: GT `area` as given (it decides APs/m/l), `iscrowd`
regions matched last and ignored, the official category ids, float xywh boxes, `score` as given,
maxDets 1/10/100, every GT image evaluated (images without detections too). Results whose
category is not in the GT are left out, as COCOeval never looks at them, and counted in a
warning (terminal and metrics.json). What pycocotools misreads or crashes on is refused naming
the entry: repeated image/category/annotation ids, annotations of an unlisted image or category,
an `iscrowd` other than 0/1 (a missing one is 0, for both scorers). With no detection left the
stats are COCOeval's (0 where GT exists, -1 where none), not upstream's run-dir all-zero rule.
The `faster` scorer is the numpy matcher (crowd rules included; also what the bootstrap
resamples), held to pycocotools at 1e-12 by tests.
"""

from __future__ import annotations

import logging
import math
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np

from coordbench.errors import ConfigError, DataError
from coordbench.metrics.bootstrap import resample_counts
from coordbench.metrics.coco import STAT_NAMES, coco_stats_eval
from coordbench.metrics.coco_images import per_image_eval
from coordbench.metrics.coco_match import CocoDets
from coordbench.metrics.eval_files import per_class_csv
from coordbench.metrics.resample import CocoResampler
from coordbench.rundir import files as A
from coordbench.rundir.jsonl import read_json_document
from coordbench.rundir.layout import METRICS, PER_CLASS

log = logging.getLogger("coordbench")


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def load_gt(path: Path) -> dict[str, Any]:
    """A COCO-format annotation file, checked: what pycocotools would crash on or silently
    misread (duplicate ids, annotations of an unlisted image or category) is refused, naming
    the entry."""
    doc = read_json_document(path)
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DataError(
            f"{path}: expected a COCO instances object with images/annotations/categories"
        )
    images = _unique_ids(path, doc["images"], "image")
    cats = _unique_ids(path, doc["categories"], "category")
    _check_annotations(path, doc)
    _check_references(path, doc["annotations"], images, cats)
    return doc


def _hashable(v: Any) -> bool:
    return isinstance(v, int | str | float | bool)


def _member(v: Any, ids: set[Any]) -> bool:
    return _hashable(v) and v in ids


def _is_subset(values: list[Any], ids: set[Any]) -> bool:
    try:
        return ids.issuperset(values)
    except TypeError:  # an unhashable value (a list): not an id
        return False


def _crowd_flag(v: Any) -> bool:
    """0 or 1 (False/True and 0.0/1.0 too: pycocotools reads `int(iscrowd)`)."""
    return type(v) in (int, bool, float) and v in (0, 1)


def _unique_ids(path: Path, entries: list[Any], what: str) -> set[Any]:
    """The ids of `entries` (images, categories or annotations). A repeated id is refused:
    pycocotools indexes by id, so the later entry replaces the earlier one in its index while
    both stay in its lists (a repeated annotation id puts the later box on the image twice and
    the earlier one nowhere), a number that describes neither file."""
    if set(map(type, entries)) - {dict}:
        i = next(i for i, e in enumerate(entries) if not isinstance(e, dict))
        raise DataError(f"{path}: {what} {i} is not an object")
    plural = "categories" if what == "category" else f"{what}s"
    ids = list(map(dict.get, entries, repeat("id")))
    if None in ids:
        raise DataError(f"{path}: {what} {ids.index(None)} has no `id`")
    if not all(map(_hashable, ids)):
        i = next(i for i, k in enumerate(ids) if not _hashable(k))
        raise DataError(f"{path}: {what} {i} has a bad id {ids[i]!r}")
    seen = set(ids)
    if len(seen) != len(ids):
        first: dict[Any, int] = {}
        for i, k in enumerate(ids):
            if k in first:
                raise DataError(
                    f"{path}: {what} id {k!r} appears twice ({plural} {first[k]} and {i}); "
                    f"pycocotools would keep only the later one's entry: give each {what} "
                    "its own id"
                )
            first[k] = i
    return seen


def _check_references(
    path: Path, anns: list[dict[str, Any]], images: set[Any], cats: set[Any]
) -> None:
    """Every annotation on a listed image, of a listed category, with a 0/1 `iscrowd` if any;
    pycocotools drops the others without a word (fewer GT, a higher AP)."""
    _unique_ids(path, anns, "annotation")
    for known, ids, what in (("image_id", images, "images"), ("category_id", cats, "categories")):
        refs = list(map(dict.get, anns, repeat(known)))
        if not _is_subset(refs, ids):
            i = next(i for i, r in enumerate(refs) if not _member(r, ids))
            raise DataError(
                f"{path}: annotation {i} (id {anns[i]['id']!r}) has {known} {refs[i]!r}, "
                f"not an id of the file's {what}"
            )
    crowd = list(
        map(dict.get, anns, repeat("iscrowd"), repeat(0))
    )  # absent: 0, as the matcher reads it
    if set(map(type, crowd)) - {int, bool, float} or not _is_subset(crowd, {0, 1}):
        i = next(i for i, c in enumerate(crowd) if not _crowd_flag(c))
        raise DataError(
            f"{path}: annotation {i} (id {anns[i]['id']!r}) has iscrowd "
            f"{anns[i]['iscrowd']!r}; expected 0 or 1"
        )


def load_coco_gt(path: Path) -> dict[str, Any]:
    """A COCO instances file for `--coco-gt`; an LVIS file is refused (its federated rules
    differ: score it with --lvis-gt)."""
    doc = load_gt(path)
    if any(isinstance(im, dict) and "neg_category_ids" in im for im in doc["images"][:1000]):
        raise DataError(
            f"{path} is an LVIS annotation file (images carry neg_category_ids): COCO rules would "
            "count every unlisted category as absent; score it with --lvis-gt/--lvis-dt"
        )
    anns = doc["annotations"]
    if not all(map(dict.__contains__, anns, repeat("iscrowd"))):
        for a in anns:  # pycocotools reads a["iscrowd"] (KeyError without it); missing is 0
            a.setdefault("iscrowd", 0)
    return doc


def _check_annotations(path: Path, doc: dict[str, Any]) -> None:
    for i, a in enumerate(doc["annotations"]):
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


def load_results(path: Path, gt: dict[str, Any]) -> tuple[CocoDets, int]:
    """Bbox results as COCOeval uses them, and how many were dropped: results of categories the
    GT lacks (COCOeval never looks at them)."""
    doc = read_json_document(path)
    if not isinstance(doc, list):
        got = f"a JSON {type(doc).__name__}" if not isinstance(doc, dict) else "one JSON object"
        raise DataError(
            f"{path}: expected a JSON list of detection results, got {got} (one result per "
            "line, JSON Lines, is not read: write the results as one list [{...}, ...])"
        )
    images = {im["id"] for im in gt["images"]}
    if not (valid_columns(doc) and images.issuperset(map(dict.get, doc, repeat("image_id")))):
        first_bad_result(path, doc, images)  # the fast checks said no: name the culprit
    cats = {c["id"] for c in gt["categories"]}
    known = list(map(cats.__contains__, map(dict.get, doc, repeat("category_id"))))
    kept = [r for r, k in zip(doc, known, strict=True) if k]
    return CocoDets.from_dicts(kept), len(doc) - len(kept)


def unknown_category_note(path: Path, doc_len: int, dropped: int, gt: dict[str, Any]) -> str:
    """The warning for results whose category_id the GT does not list (left out, as COCOeval
    leaves them out): a mapping mistake (0-based ids, another label map) reads as a low AP."""
    ids = [str(c["id"]) for c in gt["categories"][:8]]
    every = "all " if dropped == doc_len else ""
    return (
        f"{every}{dropped} of {doc_len} results in {path.name} have a category_id that is not "
        f"in the GT's categories (ids {', '.join(ids) or 'none'}{'...' if len(ids) == 8 else ''}"
        "): left out, as pycocotools leaves them out"
    )


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


MIN_BOOTSTRAP = 40  # a 95 % percentile interval needs >= 1 resample beyond each 2.5 % tail


def check_bootstrap(n: int, ci: float = 0.95) -> None:
    """Refuse a resample count too small for a `ci` percentile interval: with fewer than
    2 / (1 - ci) resamples a tail holds no resample, and the "interval" is the min and max of a
    handful of values (one resample gives a point)."""
    if 0 < n < MIN_BOOTSTRAP:
        raise ConfigError(
            f"--bootstrap {n}: a {ci:.0%} CI needs at least {MIN_BOOTSTRAP} resamples "
            "(1000 or more for a paper); 0 turns it off"
        )


def score_coco_pair(
    gt_path: Path,
    dt_path: Path,
    *,
    out: Path | None = None,
    scorer: str = "faster",
    bootstrap: int = 0,
) -> str:
    """Score the pair, write metrics.json + per_class.csv under `out`, return the summary."""
    check_bootstrap(bootstrap)
    gt = load_coco_gt(gt_path)
    dets, dropped = load_results(dt_path, gt)
    # no detection left: COCOeval's numbers (0 where GT exists, -1 where none), not upstream's
    # all-zero rule for run dirs; pycocotools itself cannot load an empty results list
    stats, per_class, _ = coco_stats_eval(gt, dets, scorer, no_detections="cocoeval")
    doc: dict[str, Any] = {
        "metrics": {f"bbox_{n}": s for n, s in zip(STAT_NAMES, stats, strict=True)},
        "per_class_ap": {n: (None if math.isnan(v) else v) for n, v in per_class},
        "n_images": len(gt["images"]),
        "n_detections": len(dets),
        "scorer": scorer,
    }
    warnings = []
    if dropped:
        warnings.append(unknown_category_note(dt_path, len(dets) + dropped, dropped, gt))
        doc["n_results_unknown_category"] = dropped
    if bootstrap and len(dets):
        doc["bootstrap_AP"] = bootstrap_ap(gt, dets, bootstrap, stats[0])
    elif bootstrap:
        warnings.append("no detection to score: the bootstrap CI of AP is skipped")
    if warnings:
        doc["warnings"] = warnings
    lines = [f"warning: {w}" for w in warnings]
    lines.append(f"scored {len(dets)} detections on {len(gt['images'])} images ({gt_path.name})")
    lines += [f"  {n:<6} {s:.4f}" for n, s in zip(STAT_NAMES, stats, strict=True)]
    if "bootstrap_AP" in doc:
        b = doc["bootstrap_AP"]
        lines.append(
            f"  AP {b['ci']:.0%} bootstrap CI [{b['lo']:.4f}, {b['hi']:.4f}] ({bootstrap})"
        )
    if out is not None:
        A.write_json(out / METRICS, doc)
        A.write_bytes_atomic(out / PER_CLASS, per_class_csv(per_class).encode("utf-8"))
        lines.append(f"-> {out}")
    return "\n".join(lines)
