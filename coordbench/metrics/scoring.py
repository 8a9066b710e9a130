"""Score upstream-format scored records: COCO + F1-ish + calibration + diagnostics.

`evaluate_records` is the one entry point for `coordbench run`, `coordbench eval` and the
compare tools; it takes the records of `gt_vs_pred_scored.jsonl` (ours or upstream's) and
returns plain data. `write_eval_dir` writes the upstream eval dir [UP-EVAL-DIR] from it.
"""

from __future__ import annotations

from typing import Any

from coordbench.metrics.beside import beside
from coordbench.metrics.calibration import calibration
from coordbench.metrics.coco import coco_output, coco_stats_eval
from coordbench.metrics.coco_match import CocoDets, CocoResults
from coordbench.metrics.detection import assemble, coco_inputs_for, ingest, score_detections
from coordbench.metrics.diagnostics import diagnostics
from coordbench.metrics.eval_files import write_eval_dir
from coordbench.metrics.f1 import evaluate_f1
from coordbench.metrics.gcpause import gc_paused
from coordbench.metrics.pred_table import pred_table
from coordbench.metrics.result import EvalOptions, EvalResult
from coordbench.metrics.semantic import Encoder, Semantic
from coordbench.rundir.jsonl import read_records

__all__ = [
    "EvalOptions",
    "EvalResult",
    "evaluate_records",
    "read_records",
    "score_detections",
    "write_eval_dir",
]


def evaluate_records(
    records: list[dict[str, Any]],
    options: EvalOptions | None = None,
    *,
    encoder: Encoder | None = None,
    invalid_json: int = 0,
    categories: list[str] | None = None,
) -> EvalResult:
    """Score scored records (upstream format); `encoder` replaces the MiniLM encoder (tests).

    One pass: the records are ingested once and every metric reads those images.
    `categories` is the dataset's vocabulary (None: the GT descs, upstream's subset rule).
    """
    with gc_paused():
        return _evaluate(records, options or EvalOptions(), encoder, invalid_json, categories)


def _coco_side(
    coco_gt: dict[str, Any], dets: CocoDets, scorer: str, bins: int
) -> tuple[list[float], list[tuple[str, float]], dict[str, Any]]:
    """COCO stats and calibration: numpy on the GT dict and detection columns only, so a child
    process can compute them while the parent builds the F1 rows and diagnostics."""
    stats, per_class, pie = coco_stats_eval(coco_gt, dets, scorer)
    area = pie.areas["all"] if pie is not None else None
    return stats, per_class, calibration(coco_gt, dets, bins, area_eval=area)


def _evaluate(
    records: list[dict[str, Any]],
    options: EvalOptions,
    encoder: Encoder | None,
    invalid_json: int,
    categories: list[str] | None,
) -> EvalResult:
    images, counters = ingest(records, invalid_json)
    table = pred_table(images)
    semantic = Semantic(options.semantic_model, encoder)
    vocab = None if options.categories == "subset" else categories
    inputs = coco_inputs_for(images, counters, options, semantic, vocab, table)
    side = (inputs.coco_gt, inputs.dets, options.scorer, options.calibration_bins)
    with beside(_coco_side, *side, rows=len(inputs.dets)) as job:
        thr = options.semantic_threshold
        f1 = evaluate_f1(images, options.f1_iou_thrs, options.pred_scope, semantic, thr, table)
        coco_preds = CocoResults(inputs.dets)  # dicts built only when read [ARCH-EVAL-MEMORY]
        diag = diagnostics(records, options, images=images, semantic=semantic, table=table)
        stats, per_class, calib = job.result()
    coco = coco_output(inputs, stats, per_class, coco_preds)
    result = assemble(images, counters, options, coco, f1)
    result.calibration, result.diagnostics = calib, diag
    return result
