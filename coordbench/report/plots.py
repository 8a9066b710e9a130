"""Report figures as PNG bytes: precision-recall at IoU 0.5 and a reliability diagram.

Both draw the evaluation's own numbers: the PR curves the COCOeval-matched detections
(`metrics.calibration.matched_detections`), the reliability diagram the `calibration` dict of
eval/metrics.json, whose ECE and prediction count its title prints as the report's table does.

matplotlib is imported inside the functions (Agg canvas on a bare `Figure`, no pyplot global
state), so importing this module costs nothing for the CLI.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from coordbench.metrics.calibration import Detections
from coordbench.report.curves import pr_curve
from coordbench.report.page import fmt

MAX_CLASS_CURVES = 8  # more lines than this make the per-class panel unreadable


def _figure(width_in: float, height_in: float) -> Any:
    # A bare Figure on an Agg canvas: no pyplot, so the host process's backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins (set by the callers): constrained layout measured 0.5 s of the report's ~1.5 s.
    fig = Figure(figsize=(width_in, height_in), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No metadata: the default Software chunk carries the matplotlib URL, and it is dead weight.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def pr_figure(det: Detections, iou_threshold: float = 0.5) -> bytes:
    """Overall PR curve (all classes pooled) and per-class curves of the most frequent GT
    classes."""
    fig = _figure(9.0, 3.8)
    ax_all, ax_cls = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.22)
    total_gt = sum(det.n_gt.values())
    by_count = sorted(det.n_gt.items(), key=lambda kv: -kv[1])  # stable: category order on ties
    rec, prec, ap = pr_curve(det.scores, det.tp, total_gt)
    if len(rec):
        ax_all.plot(
            np.concatenate([[0.0], rec]), np.concatenate([[prec[0]], prec]), color="#1f77b4"
        )
    ax_all.set_title(f"all classes pooled @IoU {iou_threshold:.2f}: AP {ap:.3f}", fontsize=10)
    top = [c for c, n in by_count[:MAX_CLASS_CURVES] if n > 0]
    for cls in top:
        mask = det.category == cls if len(det.category) else np.zeros(0, dtype=bool)
        r, p, a = pr_curve(det.scores[mask], det.tp[mask], det.n_gt[cls])
        label = f"{cls[:24]} ({a:.2f})"
        if len(r):
            ax_cls.plot(np.concatenate([[0.0], r]), np.concatenate([[p[0]], p]), label=label)
        else:
            ax_cls.plot([], [], label=label)
    extra = sum(n > 0 for n in det.n_gt.values()) - len(top)
    ax_cls.set_title(
        f"per class (top {len(top)} by GT count" + (f", {extra} more" if extra > 0 else "") + ")",
        fontsize=10,
    )
    if top:
        ax_cls.legend(fontsize=7, loc="lower left")
    for ax in (ax_all, ax_cls):
        ax.set_xlim(0, 1.0)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
    return _png(fig)


def calibration_label(calib: dict[str, Any]) -> str:
    """`reliability @IoU 0.50: ECE 0.1234 (56 preds)`: numbers formatted as the report's tables."""
    return (
        f"reliability @IoU {fmt(calib.get('iou_threshold'), 2)}: "
        f"ECE {fmt(calib.get('ece'))} ({fmt(calib.get('n_preds'))} preds)"
    )


def _bin_value(b: dict, key: str) -> float:
    v = b.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


def count_ylim(count: np.ndarray) -> tuple[float, float]:
    """The bin-count axis: from 0, at least 0..1 when every bin is empty (matplotlib would centre
    an all-zero bar chart on 0 and show negative counts)."""
    finite = count[np.isfinite(count)] if count.size else count
    top = float(finite.max()) if finite.size else 0.0
    return 0.0, max(1.0, top * 1.05)


def calibration_figure(calib: dict[str, Any]) -> bytes:
    """Reliability diagram of a `metrics.calibration` dict: fraction TP per confidence bin vs the
    diagonal, bin counts below; its title is `calibration_label`."""
    bins = [b for b in calib["bins"] if isinstance(b, dict)]
    lo, hi = (
        np.array([_bin_value(b, "lo") for b in bins]),
        np.array([_bin_value(b, "hi") for b in bins]),
    )
    count = np.array([_bin_value(b, "count") for b in bins])
    accuracy = np.array([_bin_value(b, "tp_rate") for b in bins])
    confidence = np.array([_bin_value(b, "mean_score") for b in bins])
    fig = _figure(4.6, 4.6)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.93, hspace=0.08)
    centers, width = (lo + hi) / 2, hi - lo
    ok = (count > 0) & np.isfinite(accuracy) & np.isfinite(confidence)
    ax.bar(
        centers[ok],
        accuracy[ok],
        width=width[ok] * 0.9,
        color="#4c9f70",
        edgecolor="#2d6a47",
        label="fraction TP",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(confidence[ok], accuracy[ok], "o", color="black", ms=3, label="mean confidence")
    ax.set_title(calibration_label(calib), fontsize=10)
    ax.set_ylabel("fraction TP")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    ax_n.bar(centers, np.nan_to_num(count), width=width * 0.9, color="#999999")
    ax_n.set_ylim(*count_ylim(count))
    ax_n.set_xlabel("confidence")
    ax_n.set_ylabel("preds")
    return _png(fig)
