"""Score upstream-format scored records: COCO + F1-ish + calibration + diagnostics.

`evaluate_records` is the one entry point for `coordbench run`, `coordbench eval` and the
compare tools; it takes the records of `gt_vs_pred_scored.jsonl` (ours or upstream's) and
returns plain data. `write_eval_dir` writes the upstream eval dir (§5.8) from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from coordbench.errors import DataError
from coordbench.metrics.calibration import calibration
from coordbench.metrics.coco import evaluate_coco
from coordbench.metrics.eval_dir import write_eval_dir
from coordbench.metrics.f1 import evaluate_f1
from coordbench.metrics.ingest import (
    EvalImage,
    check_score_provenance,
    new_counters,
    prepare_images,
)
from coordbench.metrics.result import EvalOptions, EvalResult
from coordbench.metrics.semantic import Encoder, Semantic

__all__ = [
    "EvalOptions",
    "EvalResult",
    "evaluate_records",
    "read_records",
    "score_records",
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
    return [{"image_id": img.index, "file_name": img.file_name, "gt_count": len(img.gts),
             "pred_count": len(img.preds), "invalid_gt": img.invalid_gt, "invalid_pred": img.invalid_pred,
             "f1ish": f1} for img, f1 in zip(images, f1_counts, strict=True)]  # fmt: skip


def score_records(records: list[dict[str, Any]], options: EvalOptions, *, encoder: Encoder | None = None,
                  invalid_json: int = 0) -> EvalResult:  # fmt: skip
    """COCO + F1-ish only (no calibration, no diagnostics): what baselines re-run."""
    check_score_provenance(records)
    counters = new_counters()
    counters["invalid_json"] = invalid_json
    images = prepare_images(records, counters)
    semantic = Semantic(options.semantic_model, encoder)
    coco = evaluate_coco(images, semantic, options.semantic_threshold, options.scorer, counters)
    f1 = evaluate_f1(
        images, options.f1_iou_thrs, options.pred_scope, semantic, options.semantic_threshold
    )
    return EvalResult(
        metrics={**coco.metrics, **f1.metrics}, counters=counters, per_class=coco.per_class,
        per_image=per_image_rows(images, f1.per_image), coco_gt=coco.coco_gt, coco_preds=coco.coco_preds,
        matches=f1.matches, primary_key=f1.primary_key, image_keys=unique_keys([i.file_name for i in images]),
        semantic_report=coco.semantic_report, options=options,
    )  # fmt: skip


def evaluate_records(records: list[dict[str, Any]], options: EvalOptions | None = None, *,
                     encoder: Encoder | None = None, invalid_json: int = 0) -> EvalResult:  # fmt: skip
    """Score scored records (upstream format); `encoder` replaces the MiniLM encoder (tests)."""
    from coordbench.metrics.diagnostics import diagnostics

    options = options or EvalOptions()
    result = score_records(records, options, encoder=encoder, invalid_json=invalid_json)
    result.calibration = calibration(result.coco_gt, result.coco_preds, options.calibration_bins)
    result.diagnostics = diagnostics(records, options, encoder=encoder)
    return result
