"""`coordbench eval --original-scale`: score a run's export against untouched COCO annotations.

Scoring, not exporting: the predictions are projected back to each image's original size by
`export/coco_results.py`, then the official annotations (COCO areas, crowd regions) score them.
"""

from __future__ import annotations

import math
from pathlib import Path

from coordbench.config.options import SCORERS
from coordbench.errors import ConfigError
from coordbench.export.coco_results import (
    build_export,
    check_categories,
    load_annotations,
    restrict_annotations,
    write_results,
)
from coordbench.metrics.coco import STAT_NAMES, coco_stats
from coordbench.metrics.semantic import Encoder
from coordbench.rundir import files as A
from coordbench.rundir import layout as L


def eval_original_scale(
    run_dir: Path,
    annotations_json: Path,
    *,
    scorer: str = "faster",
    out_dir: Path | None = None,
    data: Path | None = None,
    encoder: Encoder | None = None,
) -> dict[str, float]:
    """Score a run against untouched COCO annotations at original scale; the 12 bbox stats.

    Writes `metrics.json` and `coco_results.json` to `out_dir` (default RUN_DIR/eval_original).
    """
    if scorer not in SCORERS:
        raise ConfigError(f"expected `scorer` to be one of {SCORERS} but got {scorer!r}")
    run_dir, annotations_json = Path(run_dir), Path(annotations_json)
    coco = load_annotations(annotations_json)
    cats = check_categories(coco["categories"], annotations_json)
    exp = build_export(run_dir, categories=cats, data=data, encoder=encoder)
    gt = restrict_annotations(coco, exp, annotations_json)
    stats, per_class = coco_stats(gt, exp.results, scorer)
    metrics = {f"bbox_{n}": s for n, s in zip(STAT_NAMES, stats, strict=True)}
    out = Path(out_dir) if out_dir is not None else run_dir / L.EVAL_ORIGINAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    A.write_json(
        out / L.METRICS,
        {
            "metrics": metrics,
            "counters": exp.counters,
            "scale": "original",
            "scorer": scorer,
            "annotations": str(annotations_json),
            "images": len(gt["images"]),
            "gt_annotations": len(gt["annotations"]),
            "detections": len(exp.results),
            "per_class": {n: (None if math.isnan(v) else v) for n, v in per_class},
            "semantic_report": exp.semantic_report,
        },
    )
    write_results(out / "coco_results.json", exp.results)
    return metrics
