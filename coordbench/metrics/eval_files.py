"""The eval dir [UP-EVAL-DIR]: same file names and schemas, plus our extras.

metrics.json keeps upstream's `metrics` (only upstream keys) and `counters`, and adds
`schema_version`, `per_class_ap`, `per_class_gt`, `calibration`, `diagnostics` and
`eval_options` at the top level.
coco_gt.json carries `schema_version` too (COCO loaders ignore unknown keys); per_image.json and
coco_preds.json stay JSON lists, as upstream tools and `COCO.loadRes` expect.
"""

from __future__ import annotations

import csv
import io
from itertools import chain
from pathlib import Path
from typing import Any

from coordbench.metrics.coco_match import CocoResults
from coordbench.metrics.result import EvalResult
from coordbench.rundir import files as A
from coordbench.rundir.csvcells import class_label, safe_cell
from coordbench.rundir.layout import (
    COCO_GT,
    COCO_PREDS,
    METRICS,
    PER_CLASS,
    PER_IMAGE,
    SEMANTIC_REPORT,
    matches_name,
)


def per_class_csv(rows: list[tuple[str, float]]) -> str:
    """`category,AP` then one row per category, no trailing newline (as upstream writes it);
    a category that a spreadsheet would run as a formula gets a leading `'` (OWASP)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["category", "AP"])
    for name, ap in rows:
        w.writerow([safe_cell(class_label(name)), repr(float(ap))])
    return buf.getvalue().rstrip("\n")


def per_class_gt(coco_gt: dict[str, Any]) -> dict[str, int]:
    """GT instances per category, in category order."""
    counts = {c["id"]: 0 for c in coco_gt["categories"]}
    for a in coco_gt["annotations"]:
        counts[a["category_id"]] += 1
    return {c["name"]: counts[c["id"]] for c in coco_gt["categories"]}


def metrics_document(result: EvalResult) -> dict[str, Any]:
    return {
        "schema_version": A.SCHEMA_VERSION,
        "metrics": result.metrics,
        "counters": result.counters,
        "per_class_ap": result.per_class_ap,
        "per_class_gt": per_class_gt(
            result.coco_gt
        ),  # AP of a 1-instance class swings by 1.0 [UP-CLASS-NOISE]
        "calibration": result.calibration,
        "diagnostics": result.diagnostics,
        "eval_options": result.options.identity(),
    }


def drop_matches(out_dir: str | Path) -> list[Path]:
    """Remove the matches*.jsonl of an eval dir (`eval --no-matches`: a file left from an
    earlier evaluation would describe other predictions); the paths removed."""
    gone = []
    for path in sorted(Path(out_dir).glob("matches*.jsonl")):
        path.unlink()
        gone.append(path)
    return gone


def write_eval_dir(result: EvalResult, out_dir: str | Path) -> None:
    """Write every eval file atomically (a reader never sees half a file)."""
    out = Path(out_dir)
    A.write_json(out / METRICS, metrics_document(result))
    A.write_bytes_atomic(out / PER_CLASS, A.utf8(per_class_csv(result.per_class)))
    A.write_bytes_atomic(out / PER_IMAGE, A.dumps_json(result.per_image))
    A.write_json(out / COCO_GT, result.coco_gt)
    preds = result.coco_preds
    if isinstance(preds, CocoResults):  # written chunk by chunk, no dict per detection held
        A.write_bytes_atomic(out / COCO_PREDS, chain(preds.json_chunks(), [b"\n"]))
    else:
        A.write_bytes_atomic(out / COCO_PREDS, A.dumps_line(preds))
    for key, rows in result.matches.items():
        if key == result.primary_key or len(result.matches) > 1:
            A.write_jsonl(out / matches_name(key, result.primary_key), rows)
    if result.semantic_report is not None:
        A.write_json(out / SEMANTIC_REPORT, result.semantic_report)
