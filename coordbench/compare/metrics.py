"""The metric catalogue that `compare`, gates and the benchmark log share.

One row per metric a user reads or gates on: a short label (the names of the run's task's
`headline`, e.g. detection's mAP ... pred_total), where its value lives in a run dir, which
direction is better, and whether a paired bootstrap can resample it per image. Each task has its
own catalogue (`catalogue(task)`); `METRICS` is the default task's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from coordbench.metrics.summary import PARSE_STATUSES
from coordbench.tasks import DEFAULT_TASK, TASKS, Task

# Parse outcomes where less is better; `ok` is the only one where more is better.
_BAD_STATUSES = ("salvaged", "empty", "truncated", "malformed")


@dataclass(frozen=True)
class MetricSpec:
    """How to read and judge one metric.

    direction: +1 higher is better, -1 lower is better, 0 neither (pred_total: more boxes is
    not better by itself). source: "metrics" (summary / eval metrics key), "parse" (a parse
    rate from summary.json), "provenance" (run.json provenance, e.g. wall time).
    """

    label: str
    key: str
    direction: int
    source: str = "metrics"
    fraction: bool = True  # a value in [0, 1] (AP, F1, rates); printed with 4 decimals

    @property
    def coco(self) -> bool:
        """A COCOeval-style stat, where -1 means "no GT in range", not a score."""
        return self.key.startswith(("bbox_", "lvis_"))


def catalogue(task: Task) -> tuple[MetricSpec, ...]:
    """The task's headline metrics (with its directions), then the parse rates and timing."""
    rows = [MetricSpec(m.label, m.key, m.direction, fraction=m.fraction) for m in task.headline]
    for s in PARSE_STATUSES:
        rows.append(MetricSpec(f"parse.{s}_rate", s, -1 if s in _BAD_STATUSES else +1, "parse"))
    rows.append(MetricSpec("wall_seconds", "wall_seconds", -1, "provenance", fraction=False))
    rows.append(MetricSpec("samples_per_s", "samples_per_s", +1, "provenance", fraction=False))
    return tuple(rows)


METRICS: tuple[MetricSpec, ...] = catalogue(TASKS[DEFAULT_TASK])
# every task's metrics by label and key (a label means one metric in every task that has it)
_ALL = tuple(dict.fromkeys(m for t in TASKS.values() for m in catalogue(t)))
BY_LABEL = {m.label.lower(): m for m in reversed(_ALL)}
BY_KEY = {m.key.lower(): m for m in reversed(_ALL) if m.source == "metrics"}
# Spellings people type: "AP" for mAP, "AP_S" as in the example.
ALIASES = {
    "ap": "mAP",
    "bbox_ap": "mAP",
    "ap_s": "APs",
    "ap_m": "APm",
    "ap_l": "APl",
    "f1": "F1@0.5",
    "f1@0.50": "F1@0.5",
    "f1@0.30": "F1@0.3",
    "wall": "wall_seconds",
}
# Metrics shown in the log and in one-line summaries.
# (each task's `log_metrics`; a compare line keeps those its runs show)
KEY_METRICS = tuple(dict.fromkeys(m for t in TASKS.values() for m in t.log_metrics))


# Raw eval/metrics.json keys ([UP-EVAL-DIR] families) usable by name,
# e.g. bbox_ARs, f1ish@0.50_recall_loc_micro.
RAW_KEY = re.compile(r"^(?:(?:bbox|segm|lvis|lvis_diag)_\w+|f1ish@\d\.\d\d_\w+)$")


def resolve_metric(name: str) -> MetricSpec | None:
    """A catalogue row for a label, alias or key; other raw eval/metrics.json keys pass through."""
    name = name.strip()
    low = name.lower()
    if low in ALIASES:
        return BY_LABEL[ALIASES[low].lower()]
    if low in BY_LABEL:
        return BY_LABEL[low]
    if low in BY_KEY:
        return BY_KEY[low]
    if RAW_KEY.match(name):
        return MetricSpec(
            name, name, _guess_direction(name), fraction=not name.endswith(_COUNT_SUFFIXES)
        )
    return None


_COUNT_SUFFIXES = (
    "_tp_loc",
    "_fp_loc",
    "_fn_loc",
    "_tp_full",
    "_fp_full",
    "_fn_full",
    "_pred_total",
    "_pred_eval",
    "_pred_ignored",
    "_matched_sem_ok",
    "_matched_sem_bad",
)


def _guess_direction(key: str) -> int:
    if key.endswith(("_fp_loc", "_fn_loc", "_fp_full", "_fn_full", "_matched_sem_bad")):
        return -1
    if key.endswith(_COUNT_SUFFIXES):
        return 0
    return +1


def metric_value(
    spec: MetricSpec,
    metrics: dict[str, Any],
    parse_rates: dict[str, Any],
    provenance: dict[str, Any],
) -> float | None:
    """The value of one metric for one run, or None when the run does not record it."""
    if spec.source == "parse":
        v = parse_rates.get(spec.key)
    elif spec.source == "provenance":
        v = provenance.get(spec.key)
    else:
        v = metrics.get(spec.key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if spec.coco and v < 0:  # pycocotools' -1: no GT in that area range, not a score [UP-COCO-EVAL]
        return None
    return float(v)
