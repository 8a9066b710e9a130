"""COCO bbox metrics over validated images [UP-COCO-EVAL], pycocotools-exact.

The `faster` scorer is the numpy matcher and accumulate (no COCOeval at all,
[ARCH-SCORER-SPEED]); pycocotools stays selectable as the reference (`scorer="pycocotools"`).
Both see the same dicts and parity tests hold the 12 stats to 1e-12. Categories are the
dataset's vocabulary, or the stripped GT descs in first-appearance order [ARCH-SEMANTIC]; a
prediction whose desc is not a category is mapped by semantic similarity (>= threshold) or
dropped and counted. Detections keep record order then pred order,
because COCOeval breaks score ties by input order (stable sort, [UP-TIE-ORDER]). As upstream, area
buckets (APs/m/l) use bbox areas in preset-image pixels, not COCO's mask areas at original scale
[UP-CROWD-AREA], and there is no crowd GT, so detections on crowds count as FP [UP-CROWD-AREA].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coordbench.metrics.coco_accumulate import coco_summary
from coordbench.metrics.coco_images import PerImageEval, per_image_eval
from coordbench.metrics.coco_match import CocoDets
from coordbench.metrics.cocoeval_run import run_cocoeval
from coordbench.metrics.ingest import EvalImage, parse_score
from coordbench.metrics.pred_table import PredTable, codes, pred_table
from coordbench.metrics.semantic import Semantic, normalize_desc

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
SEMANTIC_REPORT_ROWS = 200  # upstream semantic_desc_report.json keeps at most 200 rows


@dataclass
class CocoOutput:
    metrics: dict[str, float]  # bbox_AP ... bbox_ARl
    per_class: list[tuple[str, float]]  # (category, AP) in category-id order; NaN when no data
    categories: dict[str, int]
    coco_gt: dict[str, Any]
    coco_preds: list[dict[str, Any]]
    semantic_report: dict[str, Any] | None


def build_categories(images: list[EvalImage]) -> dict[str, int]:
    cats: dict[str, int] = {}
    for img in images:
        for g in img.gts:
            cats.setdefault(str(g.get("desc") or "").strip(), len(cats) + 1)
    return cats


def category_ids(images: list[EvalImage], names: list[str] | None = None) -> dict[str, int]:
    """The vocabulary: `names` (a dataset's declared list, ids 1..n in its order) followed by
    any GT desc it lacks, or the GT descs of `images` in first-appearance order (upstream)."""
    if names is None:
        return build_categories(images)
    cats = {str(n).strip(): 0 for n in names}
    cats.update((k, 0) for k in build_categories(images) if k not in cats)
    return {n: i + 1 for i, n in enumerate(cats)}


def to_coco_gt(images: list[EvalImage], categories: dict[str, int]) -> dict[str, Any]:
    """The GT dict fed to COCOeval: every image (empty ones too), xywh boxes, bbox area."""
    anns = []
    for img in images:
        for g in img.gts:
            x1, y1, x2, y2 = g["bbox"]
            w, h = x2 - x1, y2 - y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img.index,
                    "category_id": categories[str(g.get("desc") or "").strip()],
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {},
        "licenses": [],
        "images": [
            {"id": i.index, "file_name": i.file_name, "width": i.width, "height": i.height}
            for i in images
        ],
        "annotations": anns,
        "categories": [{"id": cid, "name": name} for name, cid in categories.items()],
    }


def map_descs(
    images: list[EvalImage],
    categories: dict[str, int],
    semantic: Semantic,
    threshold: float,
    table: PredTable | None = None,
    desc_codes: tuple[list[str], np.ndarray] | None = None,
) -> tuple[dict[str, int | None], dict[str, Any] | None]:
    """Category id (or None = drop) for every non-category pred desc, plus upstream's report
    (`desc_codes`: `codes(table.desc)` when the caller has them)."""
    table = table if table is not None else pred_table(images)
    uniq, code = desc_codes if desc_codes is not None else codes(table.desc)
    per_desc = np.bincount(code, minlength=len(uniq)).tolist()  # Counter's, in uniq order
    counts = {d: n for d, n in zip(uniq, per_desc, strict=True) if d and d not in categories}
    names = [n for n in categories if n]
    if not counts or not names:
        return dict.fromkeys(counts), None
    cand = [normalize_desc(n) for n in names]
    need = [t for t in map(normalize_desc, counts) if t and t not in cand]
    if need:  # one encoder batch; descs equal to a class after normalisation need no encoder
        semantic.embed(need + cand)
    mapping: dict[str, int | None] = {}
    rows = []
    for desc, n in counts.items():
        j, score = semantic.best(normalize_desc(desc), cand) or (0, -1.0)
        ok = score >= threshold
        mapping[desc] = categories[names[j]] if ok else None
        rows.append(
            {"pred_desc": desc, "count": n, "best_gt_desc": names[j], "score": score, "mapped": ok}
        )
    rows.sort(key=lambda r: (-r["count"], -r["score"]))
    report = {
        "semantic_model": semantic.model,
        "semantic_threshold": float(threshold),
        "semantic_behavior": "map-or-drop",
        "unique_unknown_desc": len(counts),
        "unknown_total_preds": sum(counts.values()),
        "rows": rows[:SEMANTIC_REPORT_ROWS],
    }
    return mapping, report


def _kept_scores(images: list[EvalImage], table: PredTable, rows: np.ndarray) -> np.ndarray:
    """Validated scores of the detections COCO keeps (float64); the first bad one, in record
    order, is a DataError naming its record and prediction."""
    if len(rows) == len(table.score):  # every row kept: rows is 0..n-1
        vals = table.score
    else:
        vals = list(map(table.score.__getitem__, rows.tolist()))  # C-level gather
    if set(map(type, vals)) <= {float}:
        arr = np.array(vals, np.float64)
        if np.all((arr >= 0.0) & (arr <= 1.0)):  # NaN fails the compare
            return arr
    local = table.local_index(rows).tolist()
    img = table.img[rows].tolist()
    return np.array(
        [parse_score(v, images[i].index, j) for v, i, j in zip(vals, img, local, strict=True)],
        np.float64,
    )


def coco_dets(
    images: list[EvalImage],
    categories: dict[str, int],
    mapping: dict[str, int | None],
    counters: dict[str, int],
    table: PredTable | None = None,
    desc_codes: tuple[list[str], np.ndarray] | None = None,
) -> CocoDets:
    """COCO results in record order then pred order; unmapped descs dropped and counted."""
    table = table if table is not None else pred_table(images)
    uniq, code = desc_codes if desc_codes is not None else codes(table.desc)
    known = np.array([d in categories for d in uniq], bool)
    cid = np.array(
        [categories[d] if d in categories else (mapping.get(d) or 0) for d in uniq], np.int64
    )
    per_row = cid[code] if len(code) else code
    unknown = ~known[code] if len(code) else np.zeros(0, bool)
    mapped = int(np.count_nonzero(unknown & (per_row > 0)))
    dropped = int(np.count_nonzero(unknown & (per_row == 0)))
    counters["semantic_mapped"] += mapped
    counters["semantic_unmapped"] += dropped
    counters["unknown_dropped"] += dropped
    rows = np.flatnonzero(per_row > 0)
    box = table.box[rows]
    ids = np.array([im.index for im in images], np.int64)
    return CocoDets(
        image_id=ids[table.img[rows]],
        category_id=per_row[rows],
        bbox=np.concatenate([box[:, :2], box[:, 2:] - box[:, :2]], axis=1),
        score=_kept_scores(images, table, rows),
    )


def to_coco_preds(
    images: list[EvalImage],
    categories: dict[str, int],
    mapping: dict[str, int | None],
    counters: dict[str, int],
) -> list[dict[str, Any]]:
    """COCO results in record order then pred order; unmapped descs dropped and counted."""
    return coco_dets(images, categories, mapping, counters).dicts()


def per_class_ap(precision: np.ndarray, names: list[str]) -> list[tuple[str, float]]:
    """Mean of precision[:, :, k, area all, maxDets 100] over entries > -1 (upstream)."""
    out = []
    for k, name in enumerate(names):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        out.append((name, float(np.mean(p)) if p.size else float("nan")))
    return out


def numpy_stats(
    coco_gt: dict[str, Any], coco_preds: list[dict[str, Any]] | CocoDets
) -> tuple[list[float], np.ndarray, PerImageEval]:
    """The 12 stats and `eval['precision'][..., area all, maxDets 100]` without COCOeval: the
    vectorised matcher (`coco_match`) and accumulate (`resample`, all images once), both held
    to pycocotools at 1e-12 by tests. The per-image evaluation is returned for calibration."""
    pie = per_image_eval(coco_gt, coco_preds, "numpy")
    vals, precision = coco_summary(pie)
    return [vals[s] for s in STAT_NAMES], precision, pie


def coco_stats(
    coco_gt: dict[str, Any], coco_preds: list[dict[str, Any]], scorer: str
) -> tuple[list[float], list[tuple[str, float]]]:
    """The 12 stats and per-class AP; all 0.0 when there is no detection (upstream rule)."""
    stats, per_class, _ = coco_stats_eval(coco_gt, coco_preds, scorer)
    return stats, per_class


def coco_stats_eval(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]] | CocoDets,
    scorer: str,
    *,
    no_detections: str = "upstream",
) -> tuple[list[float], list[tuple[str, float]], PerImageEval | None]:
    """`coco_stats` plus the per-image evaluation when the numpy path computed it.

    `faster` takes the numpy path for sets without crowd regions and faster-coco-eval's own
    evaluation for sets with them; `pycocotools` is the reference. Without any detection,
    `no_detections="upstream"` gives upstream's all-0.0 (run dirs, [UP-COCO-EVAL]) and
    `"cocoeval"` what COCOeval gives for results that match nothing: 0.0 where the GT has
    instances, -1 where it has none (an area range, or no category at all); pycocotools
    itself cannot load an empty results list, so the numpy path computes it for both scorers.
    """
    names = [c["name"] for c in coco_gt["categories"]]
    if not coco_preds and no_detections == "upstream":
        return [0.0] * len(STAT_NAMES), [(n, 0.0) for n in names], None
    if scorer == "faster" or not coco_preds:
        stats, prec, pie = numpy_stats(coco_gt, coco_preds)
        return stats, _in_category_order(prec[:, :, :, None, None], coco_gt), pie
    if isinstance(coco_preds, CocoDets):
        coco_preds = coco_preds.dicts()
    ev = run_cocoeval(coco_gt, coco_preds, scorer)
    stats = [float(s) for s in ev.stats[: len(STAT_NAMES)]]
    return stats, _in_category_order(ev.eval["precision"], coco_gt), None


def _in_category_order(precision: np.ndarray, coco_gt: dict[str, Any]) -> list[tuple[str, float]]:
    """Per-class AP in the order of `categories` (COCOeval's K axis is by ascending id)."""
    cats = coco_gt["categories"]
    order = sorted(range(len(cats)), key=lambda i: cats[i]["id"])
    ap = per_class_ap(precision, [cats[i]["name"] for i in order])
    by_pos = {i: ap[k] for k, i in enumerate(order)}
    return [by_pos[i] for i in range(len(cats))]


@dataclass
class CocoInputs:
    """What the COCO scorer reads: the GT dict and the mapped detections (built in the parent:
    the semantic mapping may load the encoder)."""

    categories: dict[str, int]
    coco_gt: dict[str, Any]
    dets: CocoDets
    semantic_report: dict[str, Any] | None


def coco_inputs(
    images: list[EvalImage],
    semantic: Semantic,
    threshold: float,
    counters: dict[str, int],
    categories: dict[str, int] | None = None,
    table: PredTable | None = None,
) -> CocoInputs:
    categories = categories if categories is not None else build_categories(images)
    table = table if table is not None else pred_table(images)
    coco_gt = to_coco_gt(images, categories)
    desc_codes = codes(table.desc)  # one pass over the descs for the mapping and the ids
    mapping, report = map_descs(images, categories, semantic, threshold, table, desc_codes)
    dets = coco_dets(images, categories, mapping, counters, table, desc_codes)
    return CocoInputs(categories, coco_gt, dets, report)


def coco_output(
    inputs: CocoInputs,
    stats: list[float],
    per_class: list[tuple[str, float]],
    coco_preds: list[dict[str, Any]] | None = None,
) -> CocoOutput:
    metrics = {f"bbox_{n}": s for n, s in zip(STAT_NAMES, stats, strict=True)}
    preds = coco_preds if coco_preds is not None else inputs.dets.dicts()
    return CocoOutput(
        metrics, per_class, inputs.categories, inputs.coco_gt, preds, inputs.semantic_report
    )


def evaluate_coco(
    images: list[EvalImage],
    semantic: Semantic,
    threshold: float,
    scorer: str,
    counters: dict[str, int],
    categories: dict[str, int] | None = None,
    table: PredTable | None = None,
) -> CocoOutput:
    inputs = coco_inputs(images, semantic, threshold, counters, categories, table)
    stats, per_class, _ = coco_stats_eval(inputs.coco_gt, inputs.dets, scorer)
    return coco_output(inputs, stats, per_class)
