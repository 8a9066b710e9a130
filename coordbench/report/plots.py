"""Report figures as PNG bytes: precision-recall at IoU 0.5 and a reliability diagram.

matplotlib is imported inside the functions (Agg canvas on a bare `Figure`, no pyplot global
state), so importing this module costs nothing for the CLI.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from coordbench.report.curves import Detections, pr_curve, reliability

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
    """Overall PR curve (all classes pooled) and per-class curves of the most frequent GT classes."""
    fig = _figure(9.0, 3.8)
    ax_all, ax_cls = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.22)
    total_gt = sum(det.n_gt.values())
    rec, prec, ap = pr_curve(det.scores, det.tp, total_gt)
    if len(rec):
        ax_all.plot(
            np.concatenate([[0.0], rec]), np.concatenate([[prec[0]], prec]), color="#1f77b4"
        )
    ax_all.set_title(f"all classes pooled @IoU {iou_threshold:.2f}: AP {ap:.3f}", fontsize=10)
    top = [c for c, _ in det.n_gt.most_common(MAX_CLASS_CURVES)]
    classes = np.asarray(det.classes, dtype=object)
    for cls in top:
        mask = classes == cls if len(classes) else np.zeros(0, dtype=bool)
        r, p, a = pr_curve(det.scores[mask], det.tp[mask], det.n_gt[cls])
        label = f"{cls[:24]} ({a:.2f})"
        if len(r):
            ax_cls.plot(np.concatenate([[0.0], r]), np.concatenate([[p[0]], p]), label=label)
        else:
            ax_cls.plot([], [], label=label)
    extra = len(det.n_gt) - len(top)
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


def calibration_figure(det: Detections, n_bins: int = 10, iou_threshold: float = 0.5) -> bytes:
    """Reliability diagram: fraction TP per confidence bin vs the diagonal, bin counts below."""
    rel = reliability(det.scores, det.tp, n_bins)
    fig = _figure(4.6, 4.6)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.93, hspace=0.08)
    centers = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = rel.edges[1] - rel.edges[0]
    ok = rel.count > 0
    ax.bar(
        centers[ok],
        rel.accuracy[ok],
        width=width * 0.9,
        color="#4c9f70",
        edgecolor="#2d6a47",
        label="fraction TP",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(rel.confidence[ok], rel.accuracy[ok], "o", color="black", ms=3, label="mean confidence")
    ece = "n/a" if np.isnan(rel.ece) else f"{rel.ece:.3f}"
    ax.set_title(
        f"reliability @IoU {iou_threshold:.2f}: ECE {ece} ({int(rel.count.sum())} preds)",
        fontsize=10,
    )
    ax.set_ylabel("fraction TP")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    ax_n.bar(centers, rel.count, width=width * 0.9, color="#999999")
    ax_n.set_xlabel("confidence")
    ax_n.set_ylabel("preds")
    return _png(fig)
