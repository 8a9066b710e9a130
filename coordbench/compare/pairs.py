"""One run against the baseline: metric deltas with bootstrap CIs, per-class and
per-image changes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from coordbench.compare import boot as CB
from coordbench.compare.load import RunData
from coordbench.compare.metrics import MetricSpec, metric_value
from coordbench.compare.stats import (
    BootCI,
    count_table,
    paired_bootstrap_counts,
    pred_count,
    resample_counts,
    verdict,
)


@dataclass
class DeltaRow:
    """run - baseline for one metric; `verdict` is better / worse / within noise
    (or higher / lower)."""

    metric: str
    baseline: float | None
    value: float | None
    delta: float | None
    delta_pct: float | None  # improvement relative to the baseline, in percent
    ci_low: float | None
    ci_high: float | None
    verdict: str


@dataclass
class ClassDelta:
    category: str
    # n_gt: GT instances on the shared samples; classes with 1-2 instances swing by ±1.0
    # [UP-CLASS-NOISE]
    n_gt: int
    ap_baseline: float
    ap_run: float
    delta: float


@dataclass
class ImageDelta:
    """Matched boxes (`tp_full` at IoU 0.50, upstream compare's per-image key) on one sample."""

    sample: str
    image: str
    n_gt: int
    tp_baseline: int
    tp_run: int
    delta: int
    pred_baseline: int
    pred_run: int


def _bootstrap(
    base: RunData,
    run: RunData,
    shared: list[str],
    specs: Sequence[MetricSpec],
    n_boot: int,
    seed: int,
) -> tuple[dict[str, BootCI], list[str]]:
    """One resample matrix over the shared samples for every metric.

    COCO AP/AR and F1 come from `coordbench.metrics.bootstrap`; pred_total and parse rates (sums
    of per-image counts) are resampled here with the library's own count matrix. Without the
    library, F1 falls back to the count bootstrap and COCO metrics get no CI.
    """
    lib = CB.library_available()
    weights = (
        CB.shared_weights(len(shared), n_boot, seed)
        if lib
        else resample_counts(len(shared), n_boot, seed)
    )
    boots: dict[str, BootCI] = {}
    notes: list[str] = []
    ta, tb = count_table(base, shared), count_table(run, shared)
    if ta is not None and tb is not None:
        boots.update(paired_bootstrap_counts(ta, tb, [s.label for s in specs], weights))
    else:
        notes.append(
            "no per-image data (eval/per_image.json) for every shared sample: no CIs for F1, "
            "pred_total or parse rates"
        )
    if not lib:
        if any(s.coco for s in specs):
            notes.append(
                "COCO AP/AR: no confidence intervals "
                "(coordbench.metrics.bootstrap is not available)"
            )
        return boots, notes
    got = CB.library_bootstrap(base, run, shared, {s.label: s.key for s in specs}, n_boot, seed)
    if isinstance(got, str):
        notes.append(got)
    else:
        boots.update(got)
    return boots, notes


def _finite(v: float) -> float | None:
    return None if math.isnan(v) else v


def pair_deltas(
    base: RunData,
    run: RunData,
    shared: list[str],
    specs: Sequence[MetricSpec],
    same_sets: bool,
    n_boot: int,
    seed: int,
) -> tuple[list[DeltaRow], list[str]]:
    """Delta rows for every metric; values on the shared samples when the sample sets differ."""
    if not shared:
        return [], [f"{run.name} and {base.name} share no samples: no deltas"]
    # Differing sample sets need the shared-sample point estimates even without resamples.
    use = n_boot > 0 or not same_sets
    boots, notes = _bootstrap(base, run, shared, specs, n_boot, seed) if use else ({}, [])
    if n_boot == 0:
        notes.append("--n-boot 0: no confidence intervals")
    rows, full_set = [], []
    for s in specs:
        va = metric_value(s, base.metrics, base.parse_rates, base.provenance)
        vb = metric_value(s, run.metrics, run.parse_rates, run.provenance)
        b = boots.get(s.label)
        if b is not None and not same_sets:
            va, vb = b.value_a, b.value_b
        elif not same_sets and va is not None and vb is not None:
            full_set.append(s.label)
        delta = None if va is None or vb is None else vb - va
        pct = None if delta is None or not va else 100.0 * delta / abs(va)
        lo, hi = (_finite(b.ci_low), _finite(b.ci_high)) if b is not None else (None, None)
        rows.append(DeltaRow(s.label, va, vb, delta, pct, lo, hi, verdict(lo, hi, s.direction)))
    if full_set:
        notes.append(
            f"{', '.join(full_set)}: each run's full-set value "
            "(not recomputed on the shared samples)"
        )
    return rows, notes


def per_class_deltas(
    base: RunData, run: RunData, shared: list[str], top_k: int
) -> tuple[list[ClassDelta], list[ClassDelta]]:
    """Top-k per-class AP gains and losses (eval/per_class.csv of each run)."""
    n_gt = Counter(d for k in shared for d in base.samples[k].gt_descs)
    rows = []
    for cat in dict.fromkeys([*base.per_class, *run.per_class]):
        a, b = base.per_class.get(cat), run.per_class.get(cat)
        if a is None or b is None or math.isnan(a) or math.isnan(b):
            continue
        rows.append(ClassDelta(cat, n_gt.get(cat, 0), a, b, b - a))
    gains = sorted((r for r in rows if r.delta > 0), key=lambda r: (-r.delta, r.category))[:top_k]
    losses = sorted((r for r in rows if r.delta < 0), key=lambda r: (r.delta, r.category))[:top_k]
    return gains, losses


def _tp_pred(entry: dict) -> tuple[int, int]:
    d = (entry.get("f1ish") or {}).get("0.50") or {}
    return int(d.get("tp_full", 0)), pred_count(entry)


def per_image_deltas(
    base: RunData, run: RunData, shared: list[str], top_k: int
) -> tuple[list[ImageDelta], list[ImageDelta]]:
    """Top-k samples whose matched boxes (tp_full@0.50) rose or fell most; ties in dataset order."""
    rows = []
    for k in shared:
        ea, eb = base.per_image.get(k), run.per_image.get(k)
        if ea is None or eb is None:
            continue
        (ta, pa), (tb, pb) = _tp_pred(ea), _tp_pred(eb)
        s = base.samples[k]
        rows.append(ImageDelta(k, s.image, len(s.gt_descs), ta, tb, tb - ta, pa, pb))
    order = {k: i for i, k in enumerate(shared)}
    gains = sorted((r for r in rows if r.delta > 0), key=lambda r: (-r.delta, order[r.sample]))[
        :top_k
    ]
    losses = sorted((r for r in rows if r.delta < 0), key=lambda r: (r.delta, order[r.sample]))[
        :top_k
    ]
    return gains, losses
