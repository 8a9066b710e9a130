"""Plain-data options and result of an evaluation (no heavy imports)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from coordbench.config.options import EvalOptions


@dataclass
class EvalResult:
    """Plain-data outcome of one evaluation (see module docstring of `eval_dir` for the files)."""

    metrics: dict[str, float]  # upstream keys only: bbox_* (12) + f1ish@t_* (24 per threshold)
    counters: dict[str, int]  # upstream EvalCounters keys
    per_class: list[tuple[str, float]]  # per_class.csv rows (category, AP)
    per_image: list[dict[str, Any]]  # per_image.json entries
    coco_gt: dict[str, Any]
    coco_preds: list[dict[str, Any]]
    matches: dict[str, list[dict[str, Any]]]  # thr key ("0.50") -> matches.jsonl rows
    primary_key: str  # thr key written to matches.jsonl; others go to matches@{key}.jsonl
    image_keys: list[str]  # pairing key per per_image entry (record `image`, "#n" on repeats)
    calibration: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    semantic_report: dict[str, Any] | None = None
    options: EvalOptions = field(default_factory=EvalOptions)

    @property
    def per_class_ap(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else v) for k, v in self.per_class}
