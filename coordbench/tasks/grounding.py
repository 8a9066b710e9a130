"""`grounding`: referring expressions (RefCOCO / RefCOCO+ / RefCOCOg), Acc@0.5 of the top-1 box.

Each sample is one expression with one GT box. The prompt carries the sample's query in its
family's grounding prompt (`configs/prompt/*_ground.toml`); the record keeps the query, its split
and the GT box in original pixels; the scorer is `metrics.grounding` (Acc@0.5, Acc@0.75, mean
IoU, per split, a per-sample hit column for compare's paired bootstrap). [ARCH-GROUNDING]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordbench.config.options import EvalOptions
from coordbench.config.prompts import PromptContext
from coordbench.metrics.grounding import PER_SPLIT, evaluate_grounding, write_grounding_eval
from coordbench.metrics.grounding_pair import score_grounding_pair
from coordbench.rundir.layout import METRICS, PER_IMAGE
from coordbench.tasks.base import Metric, Task
from coordbench.types import Sample

HEADLINE = (
    Metric("Acc@0.5", "grounding_Acc@0.5", per_sample="hit@0.5"),
    Metric("Acc@0.75", "grounding_Acc@0.75", per_sample="hit@0.75"),
    Metric("mIoU", "grounding_mIoU", per_sample="iou"),
    Metric("no_box", "grounding_no_box", direction=-1, fraction=False),
    Metric("n", "grounding_n", direction=0, fraction=False),
)
# the record keys a grounding sample carries from its data set (data/refcoco.py writes them)
_FIELDS = ("query", "split", "ref_id", "source_image_id", "orig_width", "orig_height")


def query_context(sample: Sample, vocabulary: Sequence[str] | None) -> PromptContext:
    """The prompt names the sample's expression."""
    return PromptContext(query=str(sample.extra.get("query", "")))


def record_fields(sample: Sample) -> dict[str, Any]:
    """The expression, its split, and the GT box in original pixels (scored there)."""
    out = {k: sample.extra[k] for k in _FIELDS if k in sample.extra}
    if "gt_orig_bbox" in sample.extra:
        out["gt_orig_bbox"] = sample.extra["gt_orig_bbox"]
    return out


def score(
    records: list[dict[str, Any]],
    options: EvalOptions,
    vocabulary: list[str] | None,
    invalid_json: int = 0,
    categories: list[dict[str, Any]] | None = None,
):
    return evaluate_grounding(records)


GROUNDING = Task(
    name="grounding",
    description="Referring-expression grounding: Acc@0.5 / Acc@0.75 / mIoU of the top-1 box",
    score=score,
    write_eval=write_grounding_eval,
    headline=HEADLINE,
    eval_files=(METRICS, PER_IMAGE, PER_SPLIT),
    bootstrap_columns=("hit@0.5", "hit@0.75", "iou"),
    report_sections=("summary", "per_split", "grounding_gallery"),
    log_metrics=("Acc@0.5", "Acc@0.75", "mIoU", "parse.malformed_rate"),
    prompt_context=query_context,
    record_fields=record_fields,
    score_pair=score_grounding_pair,
)
