"""`detection`: closed-vocabulary detection scored as COCO bbox plus upstream's F1-ish matching.

What coordbench always ran, moved behind the task layer unchanged: the records, the scorer
(`metrics.scoring.evaluate_records`), the eval files, the headline and the report are the same
bytes as before the layer existed. [ARCH-TASKS]
"""

from __future__ import annotations

from typing import Any

from coordbench.metrics.scoring import EvalOptions, EvalResult, evaluate_records, write_eval_dir
from coordbench.rundir.layout import COCO_GT, COCO_PREDS, METRICS, PER_CLASS, PER_IMAGE
from coordbench.tasks.base import Metric, Task

HEADLINE = (
    Metric("mAP", "bbox_AP"),
    Metric("AP50", "bbox_AP50"),
    Metric("AP75", "bbox_AP75"),
    Metric("APs", "bbox_APs"),
    Metric("APm", "bbox_APm"),
    Metric("APl", "bbox_APl"),
    Metric("AR1", "bbox_AR1"),
    Metric("AR10", "bbox_AR10"),
    Metric("AR100", "bbox_AR100"),
    Metric("F1@0.5", "f1ish@0.50_f1_full_micro"),
    Metric("F1@0.3", "f1ish@0.30_f1_full_micro"),
    Metric("F1loc@0.5", "f1ish@0.50_f1_loc_micro"),
    Metric("F1loc@0.3", "f1ish@0.30_f1_loc_micro"),
    Metric("pred_total", "f1ish@0.50_pred_total", direction=0, fraction=False),
)


def score(
    records: list[dict[str, Any]],
    options: EvalOptions,
    vocabulary: list[str] | None,
    invalid_json: int = 0,
) -> EvalResult:
    """The one detection evaluation: COCO bbox, F1-ish, calibration and diagnostics."""
    return evaluate_records(records, options, categories=vocabulary, invalid_json=invalid_json)


DETECTION = Task(
    name="detection",
    description="COCO-style detection: bbox AP/AR (pycocotools or faster-coco-eval) and F1-ish",
    score=score,
    write_eval=write_eval_dir,
    headline=HEADLINE,
    eval_files=(METRICS, PER_CLASS, PER_IMAGE, COCO_GT, COCO_PREDS),
    # per-image counts whose sums are F1 (micro), pred_total and the parse rates; AP/AR are
    # resampled by re-matching (metrics.bootstrap)
    bootstrap_columns=("f1ish_counts", "pred_total", "parse_status", "coco_matches"),
    report_sections=("summary", "per_class_ap", "plots", "gallery"),
    scorers=("faster", "pycocotools"),  # faster-coco-eval, or the reference
    log_metrics=(
        "mAP",
        "AP50",
        "AR100",
        "F1@0.5",
        "F1loc@0.5",
        "pred_total",
        "parse.malformed_rate",
    ),
)
