"""`coordbench eval --lvis-gt lvis_v1_val.json --lvis-dt results.json`: any detector's LVIS
results scored by lvis-api's federated rules (`metrics.lvis_eval`) [ARCH-LVIS].

The GT must be an LVIS file: every image with `neg_category_ids` and
`not_exhaustive_category_ids`, every category with a `frequency`; a COCO instances file is
refused with a pointer to `--coco-gt`. Results are checked before scoring: a non-finite score, a
bad box, an unknown image or a category outside the GT each stop the command with the result's
position (lvis-api would drop unknown categories silently and assert on unknown images).
"""

from __future__ import annotations

import csv
import io
import math
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np

from coordbench.errors import DataError
from coordbench.metrics.coco import per_class_ap
from coordbench.metrics.lvis_eval import MAX_DETS, LvisDets, lvis_evaluate
from coordbench.pipeline.coco_pair import first_bad_result, load_gt, valid_columns
from coordbench.rundir import files as A
from coordbench.rundir.csvcells import safe_cell
from coordbench.rundir.guard import refuse_input_as_output
from coordbench.rundir.json_chunks import json_list_columns
from coordbench.rundir.layout import METRICS, PER_CLASS


def load_lvis_gt(path: Path) -> dict[str, Any]:
    """An LVIS annotation file, checked (COCO checks + the federated fields)."""
    gt = load_gt(path)
    for im in gt["images"]:
        missing = [k for k in ("neg_category_ids", "not_exhaustive_category_ids") if k not in im]
        if missing:
            raise DataError(
                f"{path}: image {im.get('id')!r} has no {' / '.join(missing)}: not an LVIS file "
                "(a COCO instances file? score it with --coco-gt/--coco-dt)"
            )
    for c in gt["categories"]:
        if c.get("frequency") not in ("r", "c", "f"):
            raise DataError(
                f"{path}: category {c.get('id')!r} has no LVIS frequency (r/c/f): not an LVIS file"
            )
    return gt


NUMBER = {int, float}  # exact types: a bool is refused, as `first_bad_result` does


def _fast_columns(doc: list[Any]) -> LvisDets | None:
    """The piece's columns when every result is a dict with int ids, a 4-number bbox and a
    finite number score, each key read once in C-level passes (5 M results: ~3 s instead of
    ~8 s); None when any check says no, for the per-result path to name the culprit."""
    get = dict.get
    if set(map(type, doc)) - {dict}:
        return None
    boxes = list(map(get, doc, repeat("bbox")))
    scores = list(map(get, doc, repeat("score")))
    img = list(map(get, doc, repeat("image_id")))
    cat = list(map(get, doc, repeat("category_id")))
    if set(map(type, boxes)) != {list} or set(map(len, boxes)) != {4}:
        return None
    if set(map(type, chain.from_iterable(boxes))) - NUMBER or set(map(type, scores)) - NUMBER:
        return None
    if set(map(type, img)) != {int} or set(map(type, cat)) != {int}:
        return None
    n = len(doc)
    box = np.fromiter(chain.from_iterable(boxes), np.float64, 4 * n).reshape(n, 4)
    score = np.fromiter(scores, np.float64, n)
    if not (np.isfinite(box).all() and np.isfinite(score).all()):
        return None
    return LvisDets(np.array(img, np.int64), np.array(cat, np.int64), box, score)


def _all_in(values: np.ndarray, known: np.ndarray) -> bool:
    """Every value in the sorted int array `known`."""
    if not len(known):
        return not len(values)
    pos = np.minimum(np.searchsorted(known, values), len(known) - 1)
    return bool((known[pos] == values).all())


def load_lvis_results(path: Path, gt: dict[str, Any]) -> LvisDets:
    """The results file as columns, read in chunks (never all 5 M dicts at once), checked."""
    images = {im["id"] for im in gt["images"]}
    cats = {c["id"] for c in gt["categories"]}
    int_ids = all(type(i) is int for i in chain(images, cats))
    image_arr = np.array(sorted(images), np.int64) if int_ids else None
    cat_arr = np.array(sorted(cats), np.int64) if int_ids else None

    def columns(doc: list[Any], offset: int) -> LvisDets:
        if doc and image_arr is not None and cat_arr is not None:
            fast = _fast_columns(doc)
            if fast and _all_in(fast.image_id, image_arr) and _all_in(fast.category_id, cat_arr):
                return fast
        return _checked_columns(path, doc, offset, images, cats)

    parts = json_list_columns(path, columns)
    if not isinstance(parts, list):
        raise DataError(f"{path}: expected a JSON list of detection results")
    if not parts:
        return LvisDets(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
    return LvisDets(
        np.concatenate([p.image_id for p in parts]),
        np.concatenate([p.category_id for p in parts]),
        np.concatenate([p.bbox for p in parts]),
        np.concatenate([p.score for p in parts]),
    )


def _checked_columns(
    path: Path, doc: list[Any], offset: int, images: set[Any], cats: set[Any]
) -> LvisDets:
    """The general path: every result checked against the GT, the first bad one named."""
    if not (valid_columns(doc) and images.issuperset(map(dict.get, doc, repeat("image_id")))):
        first_bad_result(path, doc, images, offset)
    cat_ids = list(map(dict.get, doc, repeat("category_id")))
    if not cats.issuperset(cat_ids):
        i = next(i for i, c in enumerate(cat_ids) if c not in cats)
        raise DataError(
            f"{path}: result {offset + i} has category_id {cat_ids[i]!r}, not an LVIS "
            "category of the GT"
        )
    n = len(doc)
    return LvisDets(
        np.fromiter(map(dict.get, doc, repeat("image_id")), np.int64, n),
        np.asarray(cat_ids, np.int64),
        np.array(list(map(dict.get, doc, repeat("bbox"))), np.float64).reshape(n, 4),
        np.fromiter(map(dict.get, doc, repeat("score")), np.float64, n),
    )


def lvis_per_class_csv(rows: list[tuple[str, float]], cats: list[dict], n_gt: dict) -> str:
    """`category,frequency,AP,n_gt`, one row per category in id order."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["category", "frequency", "AP", "n_gt"])
    for (name, ap), c in zip(rows, cats, strict=True):
        w.writerow([safe_cell(name), c.get("frequency"), repr(float(ap)), n_gt.get(c["id"], 0)])
    return buf.getvalue().rstrip("\n")


def lvis_documents(
    gt: dict[str, Any], out_stats: Any, max_dets: int = MAX_DETS
) -> tuple[dict[str, Any], str]:
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    names = [str(c.get("name", c["id"])) for c in cats]
    per_class = per_class_ap(out_stats.precision[..., None, None], names)
    n_gt: dict[Any, int] = {}
    for a in gt["annotations"]:
        n_gt[a["category_id"]] = n_gt.get(a["category_id"], 0) + 1
    doc = {
        "schema_version": A.SCHEMA_VERSION,
        "metrics": {f"lvis_{k}": v for k, v in out_stats.stats.items()},
        "counters": {f"lvis_diag_{k}": v for k, v in out_stats.counters.items()},
        "per_class_ap": {n: (None if math.isnan(v) else v) for n, v in per_class},
        "n_images": len(gt["images"]),
        "max_dets": max_dets,  # detections kept per image (the AR keys keep lvis-api's @300)
    }
    return doc, lvis_per_class_csv(per_class, cats, n_gt)


def score_lvis_pair(
    gt_path: Path, dt_path: Path, *, out: Path | None = None, max_dets: int = MAX_DETS
) -> str:
    """Score the pair, write metrics.json + per_class.csv under `out`, return the summary.
    `max_dets`: detections kept per image (lvis-api's default 300; upstream's `lvis_max_dets`)."""
    gt = load_lvis_gt(gt_path)
    dets = load_lvis_results(dt_path, gt)
    res = lvis_evaluate(gt, dets, max_dets)
    doc, csv_text = lvis_documents(gt, res, max_dets)
    c = res.counters
    lines = [
        f"scored {c['dets_evaluated']} of {c['dets_total']} detections on {len(gt['images'])} "
        f"images ({gt_path.name}): {c['dets_over_max_dets']} past the {max_dets} per image, "
        f"{c['dets_not_evaluated']} of categories neither in the image's GT nor its negatives"
    ]
    lines += [f"  {k:<8} {v:.4f}" for k, v in res.stats.items()]
    if out is not None:
        refuse_input_as_output(out / METRICS, [gt_path, dt_path])
        A.write_json(out / METRICS, doc)
        A.write_bytes_atomic(out / PER_CLASS, csv_text.encode("utf-8"))
        lines.append(f"-> {out}")
    return "\n".join(lines)
