"""Score upstream-format scored records: COCO + F1-ish + calibration + diagnostics.

`evaluate_records` is the one entry point for `coordbench run`, `coordbench eval` and the
compare tools; it takes the records of `gt_vs_pred_scored.jsonl` (ours or upstream's) and
returns plain data. `write_eval_dir` writes the upstream eval dir [UP-EVAL-DIR] from it.
"""

from __future__ import annotations

from typing import Any

from coordbench.metrics.calibration import calibration
from coordbench.metrics.detection import score_detections
from coordbench.metrics.diagnostics import diagnostics
from coordbench.metrics.eval_files import write_eval_dir
from coordbench.metrics.result import EvalOptions, EvalResult
from coordbench.metrics.semantic import Encoder
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
) -> EvalResult:
    """Score scored records (upstream format); `encoder` replaces the MiniLM encoder (tests)."""
    options = options or EvalOptions()
    result = score_detections(records, options, encoder=encoder, invalid_json=invalid_json)
    result.calibration = calibration(result.coco_gt, result.coco_preds, options.calibration_bins)
    result.diagnostics = diagnostics(records, options, encoder=encoder)
    return result
