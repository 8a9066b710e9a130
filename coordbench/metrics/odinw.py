"""ODinW protocol scoring: per-class answers merged per image, constant box scores, and COCO
bbox AP/AR at the protocol's COCOeval `maxDets` (the official config has [100, 300, 1000]).

pycocotools' `summarize` reads the headline AP at the maxDets entry equal to 100 (its
`_summarize` default) and AP50/AP75/APs/m/l at `maxDets[2]`, so with [100, 300, 1000] the mAP
is at 100 boxes and AP50 at 1000; mmdetection's CocoMetric (the official ODinW config) reports
those stats. faster-coco-eval's summary has its own layout, so the stats are computed here from
the evaluation's `precision` / `recall` arrays at pycocotools' positions, on either scorer.
[ARCH-GROUPS]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from coordbench.errors import ConfigError
from coordbench.metrics.cocoeval_run import run_cocoeval
from coordbench.metrics.result import EvalResult

PROMPT_MODES = ("all_classes", "per_class")
BOX_SCORES = ("model", "constant")
COCO_MAX_DETS = (1, 10, 100)
QUERY_KEY = "query_category"  # the one class a per_class sample asks for (record field)
AREAS = ("all", "small", "medium", "large")  # COCOeval areaRngLbl order


@dataclass(frozen=True)
class Protocol:
    """How a member is prompted and scored; each field is in the run identity."""

    prompt_mode: str = "all_classes"
    box_score: str = "constant"
    max_dets: tuple[int, ...] = (100, 300, 1000)

    def __post_init__(self) -> None:
        if self.prompt_mode not in PROMPT_MODES:
            raise ConfigError(
                f"--prompt-mode must be one of {PROMPT_MODES}, got {self.prompt_mode!r}"
            )
        if self.box_score not in BOX_SCORES:
            raise ConfigError(f"--box-score must be one of {BOX_SCORES}, got {self.box_score!r}")
        md = self.max_dets
        if not (
            isinstance(md, tuple)
            and len(md) == 3
            and all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in md)
            and list(md) == sorted(md)
        ):
            raise ConfigError(
                "--max-dets must be three increasing positive integers like 100,300,1000, "
                f"got {md!r}"
            )

    def identity(self) -> dict[str, Any]:
        return {
            "prompt_mode": self.prompt_mode,
            "score": self.box_score,
            "max_dets": list(self.max_dets),
        }

    @classmethod
    def from_identity(cls, d: dict[str, Any] | None) -> Protocol:
        if not d:
            return cls()
        return cls(
            prompt_mode=d.get("prompt_mode", cls.prompt_mode),
            box_score=d.get("score", cls.box_score),
            max_dets=tuple(d.get("max_dets", cls.max_dets)),
        )


def parse_max_dets(text: str | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """`100,300,1000` (the flag) or a list (the preset) -> a tuple, or a ConfigError."""
    if isinstance(text, list | tuple):
        return tuple(text)
    try:
        return tuple(int(p) for p in str(text).split(","))
    except ValueError:
        raise ConfigError(f"--max-dets must look like 100,300,1000, got {text!r}") from None


def merge_per_class(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per image from per_class records (one per (image, category)): the image's GT
    once, and every answer's boxes labelled with the category its prompt asked for (as the
    per-class evaluation assigns them), in record order."""
    out: dict[Any, dict[str, Any]] = {}
    for rec in records:
        key = rec.get("image_id", rec.get("image"))
        asked = rec.get(QUERY_KEY)
        preds = [
            {**p, "desc": asked} if asked is not None and isinstance(p, dict) else p
            for p in (rec.get("pred") or [])
        ]
        if key not in out:
            base = {k: v for k, v in rec.items() if k != QUERY_KEY}
            sid = str(rec.get("sample_id", ""))
            base["sample_id"] = sid.split("#c", 1)[0]
            out[key] = {**base, "pred": preds}
        else:
            out[key]["pred"] = [*out[key]["pred"], *preds]
    return list(out.values())


def constant_scores(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every kept box scores 1.0, as the official ODinW scripts write their results."""
    return [
        {**r, "pred": [{**p, "score": 1.0} for p in (r.get("pred") or []) if isinstance(p, dict)]}
        for r in records
    ]


def _mean(a: np.ndarray) -> float:
    a = a[a > -1]
    return float(np.mean(a)) if a.size else -1.0


def stats_at(ev: Any, max_dets: tuple[int, ...]) -> dict[str, float]:
    """pycocotools' 12 `summarize` stats for these maxDets, by its own positions: AP at the
    maxDets entry equal to 100 (-1 when the list has none: `_summarize`'s default), AP50/AP75/
    APs/m/l and ARs/m/l at maxDets[2], AR at each maxDets; averages over entries > -1."""
    p, r = np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"])
    thrs = np.asarray(ev.params.iouThrs)
    at100 = [i for i, m in enumerate(max_dets) if m == 100]
    out = {"odinw_mAP": _mean(p[:, :, :, 0, at100]) if at100 else -1.0}
    for name, t in (("odinw_AP50", 0.5), ("odinw_AP75", 0.75)):
        out[name] = _mean(p[np.where(np.isclose(thrs, t))[0], :, :, 0, 2])
    for a, name in enumerate(AREAS[1:], start=1):
        out[f"odinw_AP{name[0]}"] = _mean(p[:, :, :, a, 2])
    for i, suffix in enumerate(("_lo", "_mid", "_max")):
        out[f"odinw_AR{suffix}"] = _mean(r[:, :, 0, i])
    for a, name in enumerate(AREAS[1:], start=1):
        out[f"odinw_AR{name[0]}"] = _mean(r[:, :, a, 2])
    return out


def per_class_at(ev: Any, coco_gt: dict[str, Any]) -> list[tuple[str, float]]:
    """Per-class AP (area all, the last maxDets), in categories.json order."""
    p = np.asarray(ev.eval["precision"])
    cats = coco_gt["categories"]
    order = sorted(range(len(cats)), key=lambda i: cats[i]["id"])
    by_pos = {}
    for k, i in enumerate(order):
        v = _mean(p[:, :, k, 0, -1])
        by_pos[i] = float("nan") if v == -1 else v
    return [(cats[i]["name"], by_pos[i]) for i in range(len(cats))]


def coco_at_max_dets(
    coco_gt: dict[str, Any],
    coco_preds: list[dict[str, Any]],
    scorer: str,
    max_dets: tuple[int, ...],
) -> tuple[dict[str, float], list[tuple[str, float]] | None]:
    """The protocol's stats (and per-class AP) on the same COCO dicts the detection scorer
    built; all 0.0 when there is no detection (upstream's rule)."""
    if not coco_preds:
        keys = stats_at_keys()
        return {k: 0.0 for k in keys}, None
    ev = run_cocoeval(coco_gt, coco_preds, scorer, steps=())
    ev.params.maxDets = list(max_dets)
    for step in ("evaluate", "accumulate"):
        getattr(ev, step)()
    return stats_at(ev, max_dets), per_class_at(ev, coco_gt)


def stats_at_keys() -> tuple[str, ...]:
    return (
        "odinw_mAP",
        "odinw_AP50",
        "odinw_AP75",
        "odinw_APs",
        "odinw_APm",
        "odinw_APl",
        "odinw_AR_lo",
        "odinw_AR_mid",
        "odinw_AR_max",
        "odinw_ARs",
        "odinw_ARm",
        "odinw_ARl",
    )


def prepare_records(records: list[dict[str, Any]], protocol: Protocol) -> list[dict[str, Any]]:
    """The records the detection scorer reads under a protocol: merged, then re-scored."""
    if protocol.prompt_mode == "per_class":
        records = merge_per_class(records)
    if protocol.box_score == "constant":
        records = constant_scores(records)
    return records


def with_protocol_stats(result: EvalResult, protocol: Protocol) -> EvalResult:
    """The detection result plus the protocol's `odinw_*` stats; per-class AP at its maxDets."""
    stats, per_class = coco_at_max_dets(
        result.coco_gt, result.coco_preds, result.options.scorer, protocol.max_dets
    )
    return replace(
        result,
        metrics={**result.metrics, **stats},
        per_class=per_class if per_class is not None else result.per_class,
    )
