"""`lvis`: LVIS v1 federated detection, scored exactly as lvis-api (`metrics.lvis_eval`).

Records carry their image's federated lists (`neg_category_ids`, `not_exhaustive_category_ids`)
and `metadata.dataset_policy = lvis_federated`, as `coordbench data lvis` writes them; the prompt
is upstream's `lvis_stage1_federated` (or `_stage2_`) CoordJSON prompt; labels map to LVIS
categories by names and synonyms before the semantic encoder. [ARCH-LVIS]
"""

from __future__ import annotations

from typing import Any

from coordbench.config.options import EvalOptions
from coordbench.metrics.lvis_records import LvisResult, evaluate_lvis_records, write_lvis_eval
from coordbench.rundir.layout import COCO_GT, COCO_PREDS, METRICS, PER_CLASS
from coordbench.tasks.base import Metric, Task
from coordbench.types import Sample

HEADLINE = (
    Metric("lvis_AP", "lvis_AP"),
    Metric("lvis_AP50", "lvis_AP50"),
    Metric("lvis_AP75", "lvis_AP75"),
    Metric("lvis_APs", "lvis_APs"),
    Metric("lvis_APm", "lvis_APm"),
    Metric("lvis_APl", "lvis_APl"),
    Metric("lvis_APr", "lvis_APr"),
    Metric("lvis_APc", "lvis_APc"),
    Metric("lvis_APf", "lvis_APf"),
    Metric("lvis_AR@300", "lvis_AR@300"),
)
_FIELDS = ("neg_category_ids", "not_exhaustive_category_ids")


def record_fields(sample: Sample) -> dict[str, Any]:
    """The image's federated lists (LVIS category ids)."""
    return {k: sample.extra[k] for k in _FIELDS if k in sample.extra}


def score(
    records: list[dict[str, Any]],
    options: EvalOptions,
    vocabulary: list[str] | None,
    invalid_json: int = 0,
    categories: list[dict[str, Any]] | None = None,
) -> LvisResult:
    return evaluate_lvis_records(records, options, categories, invalid_json)


LVIS = Task(
    name="lvis",
    description="LVIS v1 federated detection: lvis-api AP, AP50/75, APs/m/l, APr/c/f, AR@300",
    score=score,
    write_eval=write_lvis_eval,
    headline=HEADLINE,
    eval_files=(METRICS, PER_CLASS, COCO_GT, COCO_PREDS),
    report_sections=("summary", "per_class_ap", "gallery"),
    scorers=("faster", "pycocotools"),
    log_metrics=("lvis_AP", "lvis_APr", "lvis_APc", "lvis_APf", "parse.malformed_rate"),
    record_fields=record_fields,
)
