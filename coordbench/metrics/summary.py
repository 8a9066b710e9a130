"""summary.json ([UP-SUMMARY] keys + coordbench's headline, parse rates, diagnostics) and the
table printed at the end of a run. No timing here: timing lives in run.json provenance, so a
resumed run's summary is byte-identical to an uninterrupted one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

# (label, metrics key) pairs: the run's task declares them (tasks/*.py `headline`)
Headline = Sequence[tuple[str, str]]
PARSE_STATUSES = ("ok", "salvaged", "empty", "truncated", "malformed")
# issues printed under the parse line: the ones that change boxes without a word otherwise
SHOWN_ISSUES = ("out_of_frame", "reversed_box", "bad_coordinates", "degenerate")


def build_summary(
    head: dict, recs: list[dict], result: Any, diag: dict | None = None, *, headline: Headline
) -> dict[str, Any]:
    """summary.json from run.json's head, the run's records and its one evaluation; `metrics`
    holds the task's headline keys.

    `diagnostics` and `calibration` are the evaluation's own (the dicts eval/metrics.json holds,
    computed once, with the run's EvalOptions); `diag` replaces the diagnostics (tests).
    """
    ident, cfg = head["identity"], head.get("config", {})
    errors = Counter(code for r in recs for code in r.get("errors", []))
    status = Counter(r.get("parse_status", "ok") for r in recs)
    # finer parse issues per run: out_of_frame (clamped), reversed_box (dropped under CoordJSON,
    # reordered natively), bad_coordinates, ... (docs/dialects.md)
    issues = Counter(
        code
        for r in recs
        if isinstance(codes := r.get("parse_issues"), list)
        for code in codes
        if isinstance(code, str)
    )
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
            "checkpoint_sha256": ident["checkpoint"].get("sha256"),
            **(
                {"served_model": ident["checkpoint"]["served_model"]}
                if "served_model" in ident["checkpoint"]
                else {}
            ),
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
        "metrics": {key: metrics.get(key) for _, key in headline},
        "calibration": getattr(result, "calibration", None) or metrics.get("calibration"),
        "parse": {
            "counts": {s: status.get(s, 0) for s in PARSE_STATUSES},
            "rates": {s: status.get(s, 0) / n for s in PARSE_STATUSES},
            "issues": dict(sorted(issues.items())),
        },
        "diagnostics": getattr(result, "diagnostics", None) if diag is None else diag,
    }


NO_GT = "n/a (no GT in range)"  # COCOeval's -1: no ground truth of that size / at that depth


def _fmt(v: Any, key: str = "", counts: frozenset[str] = frozenset()) -> str:
    if v is None or isinstance(v, bool):
        return "-"
    if key in counts and isinstance(v, int | float):
        return str(int(v))
    if isinstance(v, int | float) and v == -1:
        return NO_GT
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def metric_lines(
    metrics: dict[str, Any], headline: Headline, counts: frozenset[str] = frozenset()
) -> list[str]:
    """The task's headline metrics, one per line, the same names for `eval FILE` and `eval DIR`
    (`counts`: keys printed as integers)."""
    rows = [(label, _fmt(metrics.get(key), key, counts)) for label, key in headline]
    width = max(len(r[0]) for r in rows)
    return [f"  {label:<{width}}  {value}" for label, value in rows]


def format_summary(
    summary: dict,
    provenance: dict | None = None,
    run_dir: str = "",
    *,
    headline: Headline,
    counts: frozenset[str] = frozenset(),
) -> str:
    """The human-readable table printed at the end of `coordbench run` / `coordbench eval`."""
    m = summary["metrics"]
    lines = [f"run: {run_dir}" if run_dir else "", ""]
    lines += metric_lines(m, headline, counts)
    p = summary["parse"]["counts"]
    lines.append("")
    lines.append(
        "  parse: "
        + ", ".join(f"{k} {p[k]}" for k in PARSE_STATUSES)
        + f"  (of {summary['total_emitted']})"
    )
    shown = {k: v for k, v in (summary["parse"].get("issues") or {}).items() if k in SHOWN_ISSUES}
    if shown:
        lines.append("  parse issues: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
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
