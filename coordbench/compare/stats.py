"""Paired image-level bootstrap for the count-based metrics, and mean ± std over seed groups.

F1 (micro), pred_total and parse rates are sums of per-image counts, so one multinomial
count matrix (resamples x images) times the per-image count table gives every resample's
sums at once; both runs use the same resampled images (a paired bootstrap). COCO AP/AR
need per-image matching and come from `coordbench.metrics.bootstrap` (see compare_coco.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coordbench.compare.load import RunData
from coordbench.metrics.summary import PARSE_STATUSES
from coordbench.tasks import TASKS

CI_LEVEL = 0.95  # two-sided percentile interval
_F1 = {
    "F1@0.5": ("0.50", "full"),
    "F1@0.3": ("0.30", "full"),
    "F1loc@0.5": ("0.50", "loc"),
    "F1loc@0.3": ("0.30", "loc"),
}
_COUNTS = ("tp", "fp", "fn")
# a task's metrics that are means of one per-sample column (grounding's Acc@0.5 = mean of
# hit@0.5): label -> column in eval/per_image.json (the task's `bootstrap_columns`)
PER_SAMPLE = {m.label: m.per_sample for t in TASKS.values() for m in t.headline if m.per_sample}


@dataclass(frozen=True)
class BootCI:
    """Point estimates on the shared samples, their difference (b - a) and its percentile CI."""

    value_a: float
    value_b: float
    delta: float
    ci_low: float
    ci_high: float


def pred_count(entry: dict) -> int:
    """Valid predictions of one per_image.json entry (their sum is `f1ish@0.50_pred_total`)."""
    if "pred_count" in entry:
        return int(entry["pred_count"])
    d = (entry.get("f1ish") or {}).get("0.50") or {}
    return int(d.get("pred_count_eval", 0) + d.get("pred_count_ignored", 0))


def count_table(run: RunData, keys: Sequence[str]) -> dict[str, np.ndarray] | None:
    """Per-image counts (columns) over `keys` (rows), or None when the run lacks per-image data."""
    if not keys or any(k not in run.per_image for k in keys):
        return None
    cols: dict[str, list[float]] = {}
    for k in keys:
        for col in dict.fromkeys(PER_SAMPLE.values()):
            v = run.per_image[k].get(col)
            if isinstance(v, int | float) and not isinstance(v, bool):
                cols.setdefault(f"sample.{col}", []).append(float(v))
        f1 = run.per_image[k].get("f1ish") or {}
        for thr in ("0.50", "0.30"):
            d = f1.get(thr) or {}
            for kind in ("full", "loc"):
                for c in _COUNTS:
                    cols.setdefault(f"{thr}_{c}_{kind}", []).append(float(d.get(f"{c}_{kind}", 0)))
        cols.setdefault("pred_total", []).append(float(pred_count(run.per_image[k])))
        status = run.samples[k].parse_status
        for s in PARSE_STATUSES:
            cols.setdefault(f"parse.{s}_rate", []).append(1.0 if status == s else 0.0)
    return {name: np.asarray(v) for name, v in cols.items()}


def _metric_from_sums(label: str, sums: dict[str, np.ndarray], n: int) -> np.ndarray:
    if label in _F1:
        thr, kind = _F1[label]
        tp, fp, fn = (sums[f"{thr}_{c}_{kind}"] for c in _COUNTS)
        # Upstream micro P/R/F1 (metrics.f1.prf): P = 1 without predictions, R = 1 without GT.
        p = np.divide(tp, tp + fp, out=np.ones_like(tp, dtype=float), where=(tp + fp) > 0)
        r = np.divide(tp, tp + fn, out=np.ones_like(tp, dtype=float), where=(tp + fn) > 0)
        return np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    if label in PER_SAMPLE:
        return sums[f"sample.{PER_SAMPLE[label]}"] / n
    if label == "pred_total":
        return sums["pred_total"]
    return sums[label] / n  # parse rates


COUNT_METRICS = (
    *_F1,
    *PER_SAMPLE,
    "pred_total",
    *(f"parse.{s}_rate" for s in PARSE_STATUSES),
)


def resample_counts(n_images: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_images) multiplicities of each image in each resample; seeded, reproducible."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot).astype(
        np.float64
    )


def paired_bootstrap_counts(
    table_a: dict[str, np.ndarray],
    table_b: dict[str, np.ndarray],
    labels: Sequence[str],
    weights: np.ndarray,
) -> dict[str, BootCI]:
    """Paired bootstrap CIs of (b - a) for count-based metrics; `weights` from `resample_counts`."""
    n = len(next(iter(table_a.values())))
    names = sorted(table_a)
    mat_a = np.stack([table_a[c] for c in names], axis=1)
    mat_b = np.stack([table_b[c] for c in names], axis=1)
    boot_a, boot_b = weights @ mat_a, weights @ mat_b  # (n_boot, columns)
    full_a, full_b = mat_a.sum(axis=0), mat_b.sum(axis=0)
    out = {}
    for label in labels:
        if label not in COUNT_METRICS or (
            label in PER_SAMPLE and f"sample.{PER_SAMPLE[label]}" not in table_a
        ):
            continue
        sa = {c: boot_a[:, i] for i, c in enumerate(names)}
        sb = {c: boot_b[:, i] for i, c in enumerate(names)}
        d = _metric_from_sums(label, sb, n) - _metric_from_sums(label, sa, n)
        pa = float(
            _metric_from_sums(label, {c: full_a[i : i + 1] for i, c in enumerate(names)}, n)[0]
        )
        pb = float(
            _metric_from_sums(label, {c: full_b[i : i + 1] for i, c in enumerate(names)}, n)[0]
        )
        lo, hi = (
            np.quantile(d, [(1 - CI_LEVEL) / 2, 1 - (1 - CI_LEVEL) / 2])
            if len(d)
            else (np.nan, np.nan)
        )
        out[label] = BootCI(pa, pb, pb - pa, float(lo), float(hi))
    return out


def verdict(ci_low: float | None, ci_high: float | None, direction: int) -> str:
    """better / worse / within noise from a CI of (run - baseline);
    direction 0 says more / fewer."""
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return "n/a"
    if ci_low <= 0 <= ci_high:
        return "within noise"
    up = ci_low > 0
    if direction == 0:
        return "higher" if up else "lower"
    return "better" if up == (direction > 0) else "worse"


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample std (ddof 1; 0 for a single value) and count of the non-missing values."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return None, None, 0
    arr = np.asarray(xs)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(xs) > 1 else 0.0, len(xs)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test p-value between two groups of per-seed values (None below 2 each)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    with (
        warnings.catch_warnings()
    ):  # near-identical seeds: scipy warns about precision, p is still usable
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired_t_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value over matched values (same seed / same fold);
    None below 2 pairs."""
    if len(a) < 2 or len(a) != len(b):
        return None
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if np.all(diffs == diffs[0]):  # zero variance: the t statistic is undefined
        return 1.0 if diffs[0] == 0 else 0.0
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(b, a).pvalue)
