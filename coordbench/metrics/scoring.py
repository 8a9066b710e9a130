"""Score upstream-format scored records: COCO + F1-ish + calibration + diagnostics.

`evaluate_records` is the one entry point for `coordbench run`, `coordbench eval` and the
compare tools; it takes the records of `gt_vs_pred_scored.jsonl` (ours or upstream's) and
returns plain data. `write_eval_dir` writes the upstream eval dir [UP-EVAL-DIR] from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from coordbench.errors import DataError
from coordbench.metrics.calibration import calibration
from coordbench.metrics.detection import score_detections
from coordbench.metrics.diagnostics import diagnostics
from coordbench.metrics.eval_files import write_eval_dir
from coordbench.metrics.result import EvalOptions, EvalResult
from coordbench.metrics.semantic import Encoder

__all__ = [
    "EvalOptions",
    "EvalResult",
    "evaluate_records",
    "read_records",
    "score_detections",
    "write_eval_dir",
]


def read_records(path: str | Path, *, tolerant: bool = False) -> tuple[list[dict], int]:
    """Records of a JSONL file and how many lines were skipped.

    A malformed line is a DataError naming file and line, or skipped and counted when
    `tolerant`; a torn last line (no trailing newline) is always skipped and counted.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror or e}") from None
    lines = data.split(b"\n")
    recs: list[dict] = []
    skipped = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
            if not isinstance(rec, dict):
                raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        except (orjson.JSONDecodeError, ValueError) as e:
            if tolerant or n == len(lines):  # the last piece has no trailing newline: torn
                skipped += 1
                continue
            raise DataError(
                f"{p}:{n}: malformed JSONL line ({e}); pass --tolerant to skip such lines"
            ) from None
        recs.append(rec)
    return recs, skipped


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
