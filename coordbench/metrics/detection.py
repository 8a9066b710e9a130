"""COCO + F1-ish over scored records: the part of an evaluation that baselines re-run."""

from __future__ import annotations

from typing import Any

from coordbench.metrics.coco import (
    CocoInputs,
    CocoOutput,
    category_ids,
    coco_inputs,
    coco_output,
    coco_stats_eval,
)
from coordbench.metrics.f1 import F1Output, evaluate_f1
from coordbench.metrics.ingest import (
    EvalImage,
    check_score_provenance,
    new_counters,
    prepare_images,
)
from coordbench.metrics.pred_table import PredTable, pred_table
from coordbench.metrics.result import EvalOptions, EvalResult
from coordbench.metrics.semantic import Encoder, Semantic, normalize_desc


def unique_keys(names: list[str]) -> list[str]:
    """Pairing keys: each name, with `#n` appended to its n-th repeat."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}#{n}")
    return out


def per_image_rows(
    images: list[EvalImage], f1_counts: list[dict[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    return [
        {
            "image_id": img.index,
            "file_name": img.file_name,
            "gt_count": len(img.gts),
            "pred_count": img.n_preds,
            "invalid_gt": img.invalid_gt,
            "invalid_pred": img.invalid_pred,
            "f1ish": f1,
        }
        for img, f1 in zip(images, f1_counts, strict=True)
    ]


def coco_inputs_for(
    images: list[EvalImage],
    counters: dict[str, int],
    options: EvalOptions,
    semantic: Semantic,
    categories: list[str] | None,
    table: PredTable,
) -> CocoInputs:
    """The vocabulary (the semantic matcher learns its class names) and the COCO inputs."""
    cats = category_ids(images, categories)
    semantic.classes = frozenset(normalize_desc(n) for n in cats) | semantic.classes
    return coco_inputs(images, semantic, options.semantic_threshold, counters, cats, table)


def assemble(
    images: list[EvalImage],
    counters: dict[str, int],
    options: EvalOptions,
    coco: CocoOutput,
    f1: F1Output,
) -> EvalResult:
    return EvalResult(
        metrics={**coco.metrics, **f1.metrics},
        counters=counters,
        per_class=coco.per_class,
        per_image=per_image_rows(images, f1.per_image),
        coco_gt=coco.coco_gt,
        coco_preds=coco.coco_preds,
        matches=f1.matches,
        primary_key=f1.primary_key,
        image_keys=unique_keys([i.file_name for i in images]),
        semantic_report=coco.semantic_report,
        options=options,
    )


def score_images(
    images: list[EvalImage],
    counters: dict[str, int],
    options: EvalOptions,
    semantic: Semantic,
    categories: list[str] | None = None,
    table: PredTable | None = None,
) -> EvalResult:
    """COCO + F1-ish of ingested images (ingest once, every metric reads these images and
    their one prediction table)."""
    table = table if table is not None else pred_table(images)
    inputs = coco_inputs_for(images, counters, options, semantic, categories, table)
    stats, per_class, _ = coco_stats_eval(inputs.coco_gt, inputs.dets, options.scorer)
    thr = options.semantic_threshold
    f1 = evaluate_f1(images, options.f1_iou_thrs, options.pred_scope, semantic, thr, table)
    return assemble(images, counters, options, coco_output(inputs, stats, per_class), f1)


def ingest(
    records: list[dict[str, Any]], invalid_json: int = 0
) -> tuple[list[EvalImage], dict[str, int]]:
    """Records -> validated images and the upstream counters, once per evaluation."""
    check_score_provenance(records)
    counters = new_counters()
    counters["invalid_json"] = invalid_json
    return prepare_images(records, counters), counters


def score_detections(
    records: list[dict[str, Any]],
    options: EvalOptions,
    *,
    encoder: Encoder | None = None,
    invalid_json: int = 0,
    categories: list[str] | None = None,
) -> EvalResult:
    """COCO + F1-ish only (no calibration, no diagnostics): what baselines re-run."""
    images, counters = ingest(records, invalid_json)
    return score_images(
        images, counters, options, Semantic(options.semantic_model, encoder), categories
    )
