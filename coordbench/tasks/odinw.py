"""`odinw`: one ODinW member data set, a detection run whose identity holds the protocol.

The protocol (`metrics.odinw.Protocol`): `prompt_mode` (all_classes: one prompt naming the
member's categories, the Qwen3-VL script; per_class: one sample per (image, category) whose
prompt names that category alone, merged per image before scoring, as Qwen2.5-VL was
evaluated), `score` (model: the token confidence; constant: every box 1.0, as the official
scripts) and `max_dets` (COCOeval maxDets; the official config's [100, 300, 1000]). The
`odinw13` preset (configs/task/odinw13.toml) names the 13 members; `pipeline/group.py` runs
them. [ARCH-GROUPS]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from coordbench.config.options import EvalOptions
from coordbench.config.prompts import PromptContext
from coordbench.metrics.odinw import (
    QUERY_KEY,
    Protocol,
    parse_max_dets,
    prepare_records,
    with_protocol_stats,
)
from coordbench.metrics.scoring import EvalResult, evaluate_records, write_eval_dir
from coordbench.rundir.layout import COCO_GT, COCO_PREDS, METRICS, PER_CLASS, PER_IMAGE
from coordbench.tasks.base import Metric, Task, vocabulary_context
from coordbench.types import Sample

HEADLINE = (
    Metric("mAP", "odinw_mAP"),
    Metric("AP50", "odinw_AP50"),
    Metric("AP75", "odinw_AP75"),
    Metric("APs", "odinw_APs"),
    Metric("APm", "odinw_APm"),
    Metric("APl", "odinw_APl"),
    Metric("AR@max", "odinw_AR_max"),
    Metric("F1@0.5", "f1ish@0.50_f1_full_micro"),
    Metric("pred_total", "f1ish@0.50_pred_total", direction=0, fraction=False),
)


def resolve_protocol(cfg: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The run's protocol from its flags over the preset's defaults, validated."""
    d = {**Protocol().identity(), **(defaults or {})}
    md = cfg.max_dets if cfg.max_dets is not None else d["max_dets"]
    return Protocol(
        prompt_mode=cfg.prompt_mode or d["prompt_mode"],
        box_score=cfg.box_score or d["score"],
        max_dets=parse_max_dets(md),
    ).identity()


def expand_samples(
    samples: list[Sample], protocol: dict[str, Any], vocabulary: Sequence[str] | None
) -> list[Sample]:
    """per_class: one sample per (image, category), id `IMAGE#cK` (K = the category's position),
    the category in `extra`; all_classes: the samples as they are."""
    if Protocol.from_identity(protocol).prompt_mode != "per_class" or not vocabulary:
        return samples
    out = []
    for s in samples:
        for k, name in enumerate(vocabulary):
            out.append(
                replace(
                    s,
                    sample_id=f"{s.sample_id}#c{k}",
                    index=len(out),
                    extra={**s.extra, QUERY_KEY: name},
                )
            )
    return out


def prompt_context(sample: Sample, vocabulary: Sequence[str] | None) -> PromptContext:
    """A per_class sample's prompt names its one category; else the member's categories."""
    asked = sample.extra.get(QUERY_KEY)
    return PromptContext(classes=(asked,)) if asked else vocabulary_context(sample, vocabulary)


def record_fields(sample: Sample) -> dict[str, Any]:
    asked = sample.extra.get(QUERY_KEY)
    return {QUERY_KEY: asked} if asked else {}


def score(
    records: list[dict[str, Any]],
    options: EvalOptions,
    vocabulary: list[str] | None,
    invalid_json: int = 0,
    categories: list[dict[str, Any]] | None = None,
    protocol: dict[str, Any] | None = None,
) -> EvalResult:
    """Detection scoring of the protocol's records plus `odinw_*` stats at its maxDets."""
    proto = Protocol.from_identity(protocol)
    recs = prepare_records(records, proto)
    result = evaluate_records(recs, options, categories=vocabulary, invalid_json=invalid_json)
    return with_protocol_stats(result, proto)


ODINW = Task(
    name="odinw",
    description="ODinW member: COCO bbox AP at the protocol's maxDets (official: 100,300,1000)",
    score=score,
    write_eval=write_eval_dir,
    headline=HEADLINE,
    eval_files=(METRICS, PER_CLASS, PER_IMAGE, COCO_GT, COCO_PREDS),
    bootstrap_columns=("f1ish_counts", "pred_total", "parse_status", "coco_matches"),
    report_sections=("summary", "per_class_ap", "plots", "gallery"),
    scorers=("faster", "pycocotools"),
    log_metrics=("mAP", "AP50", "pred_total", "parse.malformed_rate"),
    prompt_context=prompt_context,
    record_fields=record_fields,
    resolve_protocol=resolve_protocol,
    expand_samples=expand_samples,
)
