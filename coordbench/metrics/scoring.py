"""Score upstream-format scored records: COCO + F1-ish + calibration + diagnostics.

`evaluate_records` is the one entry point for `coordbench run`, `coordbench eval` and the
compare tools; it takes the records of `gt_vs_pred_scored.jsonl` (ours or upstream's) and
returns plain data. `write_eval_dir` writes the upstream eval dir [UP-EVAL-DIR] from it.
"""

from __future__ import annotations

from typing import Any

from coordbench.metrics.calibration import calibration
from coordbench.metrics.detection import ingest, score_detections, score_images
from coordbench.metrics.diagnostics import diagnostics
from coordbench.metrics.eval_files import write_eval_dir
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
    result = score_images(images, counters, options, semantic, vocab, table)
    pie = result.per_image_eval  # the COCO matching, read again rather than recomputed
    result.calibration = calibration(
        result.coco_gt,
        result.coco_preds,
        options.calibration_bins,
        area_eval=pie.areas["all"] if pie is not None else None,
    )
    result.diagnostics = diagnostics(
        records, options, images=images, semantic=semantic, table=table
    )
    return result
