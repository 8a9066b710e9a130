"""summary.json ([UP-SUMMARY] keys + coordbench's headline, parse rates, diagnostics) and the
table printed at the end of a run. No timing here: timing lives in run.json provenance, so a
resumed run's summary is byte-identical to an uninterrupted one."""

from __future__ import annotations

from collections import Counter
from typing import Any

HEADLINE = (
    ("mAP", "bbox_AP"),
    ("AP50", "bbox_AP50"),
    ("AP75", "bbox_AP75"),
    ("APs", "bbox_APs"),
    ("APm", "bbox_APm"),
    ("APl", "bbox_APl"),
    ("AR1", "bbox_AR1"),
    ("AR10", "bbox_AR10"),
    ("AR100", "bbox_AR100"),
    ("F1@0.5", "f1ish@0.50_f1_full_micro"),
    ("F1@0.3", "f1ish@0.30_f1_full_micro"),
    ("F1loc@0.5", "f1ish@0.50_f1_loc_micro"),
    ("F1loc@0.3", "f1ish@0.30_f1_loc_micro"),
    ("pred_total", "f1ish@0.50_pred_total"),
)
PARSE_STATUSES = ("ok", "salvaged", "empty", "truncated", "malformed")


def build_summary(
    head: dict, recs: list[dict], result: Any, diag: dict | None = None
) -> dict[str, Any]:
    """summary.json from run.json's head, the run's records and its one evaluation.

    `diagnostics` and `calibration` are the evaluation's own (the dicts eval/metrics.json holds,
    computed once, with the run's EvalOptions); `diag` replaces the diagnostics (tests).
    """
    ident, cfg = head["identity"], head.get("config", {})
    errors = Counter(code for r in recs for code in r.get("errors", []))
    status = Counter(r.get("parse_status", "ok") for r in recs)
    n = max(1, len(recs))
    metrics = result.metrics
    return {
        "identity_hash": head["identity_hash"],
        "mode": "coord" if ident["prompt"]["surface"] == "coord_tokens" else "text",
        "determinism": "strict" if ident["backend"] == "hf" else "best_effort",
        "errors_total": sum(errors.values()),
        "errors_by_code": dict(sorted(errors.items())),
        "counters": dict(sorted(errors.items())),
        "error_codes": sorted(errors),
        "total_read": len(recs),
        "total_emitted": len(recs),
        "total_expected": ident.get("dataset", {}).get("num_samples"),  # total_read falls short
        "backend": {
            "type": ident["backend"],
            "model_checkpoint": cfg.get("ckpt"),
            "adapter_checkpoint": cfg.get("adapter"),
            "checkpoint_sha256": ident["checkpoint"]["sha256"],
        },
        "generation": {**ident["decode"], "seed": ident["seed"]},
        "infer": {
            "gt_jsonl": cfg.get("data"),
            "preset": ident["preset"],
            "prompt_preset": ident["prompt"]["name"],
            "prompt_template_hash": ident["prompt"]["template_hash"],
            "message_layout": ident["prompt"]["layout"],
            "coord_surface": ident["prompt"]["surface"],
            "limit": ident["dataset"]["limit"],
        },
        "metrics": {key: metrics.get(key) for _, key in HEADLINE},
        "calibration": getattr(result, "calibration", None) or metrics.get("calibration"),
        "parse": {
            "counts": {s: status.get(s, 0) for s in PARSE_STATUSES},
            "rates": {s: status.get(s, 0) / n for s in PARSE_STATUSES},
        },
        "diagnostics": getattr(result, "diagnostics", None) if diag is None else diag,
    }


COUNT_KEYS = frozenset({"f1ish@0.50_pred_total"})
NO_GT = "n/a (no GT in range)"  # COCOeval's -1: no ground truth of that size / at that depth


def _fmt(v: Any, key: str = "") -> str:
    if v is None or isinstance(v, bool):
        return "-"
    if key in COUNT_KEYS and isinstance(v, int | float):
        return str(int(v))
    if isinstance(v, int | float) and v == -1:
        return NO_GT
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """The headline metrics, one per line, with the same names for `eval FILE` and `eval DIR`."""
    rows = [(label, _fmt(metrics.get(key), key)) for label, key in HEADLINE]
    width = max(len(r[0]) for r in rows)
    return [f"  {label:<{width}}  {value}" for label, value in rows]


def format_summary(summary: dict, provenance: dict | None = None, run_dir: str = "") -> str:
    """The human-readable table printed at the end of `coordbench run` / `coordbench eval`."""
    m = summary["metrics"]
    lines = [f"run: {run_dir}" if run_dir else "", ""]
    lines += metric_lines(m)
    p = summary["parse"]["counts"]
    lines.append("")
    lines.append(
        "  parse: "
        + ", ".join(f"{k} {p[k]}" for k in PARSE_STATUSES)
        + f"  (of {summary['total_emitted']})"
    )
    cal = summary.get("calibration") or {}
    if cal.get("n_preds"):
        lines.append(
            f"  confidence: a ranking score, not a probability (AUROC {_fmt(cal.get('auroc'))}, "
            f"ECE raw {_fmt(cal.get('ece'))}, ECE after mapping to precision "
            f"{_fmt(cal.get('ece_precision_mapped'))})"
        )
    for w in (summary.get("diagnostics") or {}).get("warnings", []):
        lines.append(f"  warning: {w}")
    if provenance:
        wall = provenance.get("wall_seconds")
        sps = provenance.get("samples_per_s")
        if wall is not None:
            rate = f"{sps:.2f} samples/s" if isinstance(sps, int | float) else "none generated"
            lines.append(f"  wall {wall:.1f} s, {rate}")
    return "\n".join(lines).strip("\n")
