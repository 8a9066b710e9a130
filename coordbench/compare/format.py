"""Render a CompareResult (and gate verdicts) as markdown, tidy CSV, JSON or a LaTeX table.

Markdown puts the caveats first, then the per-run table, then one delta table per run against
the baseline, then per-class / per-image changes, then seed groups, then gates.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from coordbench.compare.groups import NOISE_Z
from coordbench.compare.metrics import BY_LABEL
from coordbench.rundir.csvcells import safe_cell

if TYPE_CHECKING:  # annotations only
    from coordbench.compare.core import CompareResult, PairResult
    from coordbench.compare.gates import GateResult

SMALL_CLASS_NOTE = (
    "Per-class AP on a few hundred images swings by up to ±1.0 for classes with only 1-2 GT "
    "boxes (one box found or missed): read the GT column before the Δ."
)


def fmt_value(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    spec = BY_LABEL.get(metric.lower())
    if spec is None or spec.fraction:
        return f"{v:.4f}"
    if metric == "samples_per_s":
        return f"{v:.2f}"
    if metric == "wall_seconds" or not float(v).is_integer():
        return f"{v:.1f}"
    return f"{v:.0f}"


def fmt_delta(metric: str, d: float | None) -> str:
    s = fmt_value(metric, d)
    return s if d is None or s.startswith("-") else f"+{s}"


def fmt_pct(p: float | None) -> str:
    return "-" if p is None else f"{p:+.1f} %"


def fmt_ci(metric: str, lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "-"
    spec = BY_LABEL.get(metric.lower())
    if spec is not None and not spec.fraction:  # counts: one format for both ends
        return f"[{lo:+.1f}, {hi:+.1f}]"
    return f"[{fmt_delta(metric, lo)}, {fmt_delta(metric, hi)}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    esc = [[str(c).replace("|", "\\|") for c in r] for r in [list(header), *rows]]
    return [
        "| " + " | ".join(esc[0]) + " |",
        "| " + " | ".join(sep) + " |",
        *("| " + " | ".join(r) + " |" for r in esc[1:]),
    ]


def _runs_md(res: CompareResult) -> list[str]:
    names = [r.name + (" (baseline)" if r.name == res.baseline else "") for r in res.runs]
    rows = [["samples", *(str(r.n_samples) for r in res.runs)]]
    rows += [[m, *(fmt_value(m, r.values.get(m)) for r in res.runs)] for m in res.metrics]
    rows.append(["identity", *((r.identity_hash or "-")[:12] for r in res.runs)])
    return ["## Runs", "", *_table(["metric", *names], rows)]


def _pair_md(p: PairResult, top_k: int) -> list[str]:
    out = [
        f"## {p.run} vs {p.baseline}",
        "",
        p.about,
        "",
        f"{p.n_shared} shared samples ({p.baseline} {p.n_baseline}, {p.run} {p.n_run}).",
        "",
    ]
    if p.deltas:
        rows = [
            [
                d.metric,
                fmt_value(d.metric, d.baseline),
                fmt_value(d.metric, d.value),
                fmt_delta(d.metric, d.delta),
                fmt_pct(d.delta_pct),
                fmt_ci(d.metric, d.ci_low, d.ci_high),
                d.verdict,
            ]
            for d in p.deltas
        ]
        out += _table(
            ["metric", p.baseline, p.run, "Δ", "Δ %", "95 % CI", "verdict"], rows, "lrrrrll"
        ) + [""]
    out += [f"- {n}" for n in p.notes] + ([""] if p.notes else [])
    if p.per_class_gains or p.per_class_losses:
        out += [f"### Per-class AP, top {top_k} gains and losses", ""]
        rows = [
            [c.category, str(c.n_gt), f"{c.ap_baseline:.4f}", f"{c.ap_run:.4f}", f"{c.delta:+.4f}"]
            for c in [*p.per_class_gains, *p.per_class_losses]
        ]
        out += _table(["category", "GT", p.baseline, p.run, "Δ AP"], rows) + [
            "",
            SMALL_CLASS_NOTE,
            "",
        ]
    if p.per_image_gains or p.per_image_losses:
        out += [f"### Per-image matched boxes (tp_full@0.50), top {top_k} gains and losses", ""]
        rows = [
            [
                i.sample,
                i.image,
                str(i.n_gt),
                f"{i.tp_baseline} / {i.pred_baseline}",
                f"{i.tp_run} / {i.pred_run}",
                f"{i.delta:+d}",
            ]
            for i in [*p.per_image_gains, *p.per_image_losses]
        ]
        out += _table(
            ["sample", "image", "GT", f"{p.baseline} tp / pred", f"{p.run} tp / pred", "Δ tp"],
            rows,
            "llrrrr",
        )
        out.append("")
    return out


def _groups_md(res: CompareResult) -> list[str]:
    if not res.groups:
        return []
    out = [f"## Groups: mean ± std over {res.group_by}", ""]
    header = ["metric", *(g.label for g in res.groups)]
    rows = [
        ["n", *(str(g.n) for g in res.groups)],
        [res.group_by, *(", ".join(g.axis_values) for g in res.groups)],
    ]
    for m in res.metrics:
        cells = []
        for g in res.groups:
            mean, std = g.mean.get(m), g.std.get(m)
            cells.append("-" if mean is None else f"{fmt_value(m, mean)} ± {fmt_value(m, std)}")
        rows.append([m, *cells])
    out += _table(header, rows) + [""]
    for label in dict.fromkeys(d.group for d in res.group_deltas):
        ds = [d for d in res.group_deltas if d.group == label]
        out += [
            f"### {label} vs {ds[0].baseline_group} ({ds[0].test}-test over {res.group_by})",
            "",
        ]
        rows = [
            [
                d.metric,
                fmt_value(d.metric, d.mean_baseline),
                fmt_value(d.metric, d.mean_run),
                fmt_delta(d.metric, d.delta),
                "-" if d.p_value is None else f"{d.p_value:.3g}",
                d.verdict,
            ]
            for d in ds
        ]
        out += _table(["metric", "baseline mean", "mean", "Δ", "p", "verdict"], rows, "lrrrrl") + [
            ""
        ]
    return out


def _single_md(res: CompareResult) -> list[str]:
    out: list[str] = []
    for run, group in dict.fromkeys((d.run, d.group) for d in res.single_vs_group):
        ds = [d for d in res.single_vs_group if d.run == run and d.group == group]
        out += [
            f"### {run} vs the mean of {group}",
            "",
            f"Noise scale: the group's std over {res.group_by}; within {NOISE_Z:g} std reads "
            "as noise.",
            "",
        ]
        rows = [
            [
                d.metric,
                fmt_value(d.metric, d.group_mean),
                fmt_value(d.metric, d.group_std),
                fmt_value(d.metric, d.value),
                fmt_delta(d.metric, d.delta),
                "-" if d.z is None else f"{d.z:+.2f}",
                d.verdict,
            ]
            for d in ds
        ]
        header = ["metric", "group mean", "group std", run, "Δ", "Δ / std", "verdict"]
        out += _table(header, rows, "lrrrrrl") + [""]
    return out


def gates_md(gates: Sequence[GateResult]) -> list[str]:
    if not gates:
        return []
    met = sum(g.met for g in gates)
    out = [f"## Gates: {met} of {len(gates)} met", ""]
    rows = [
        [g.rule, g.run, "-" if g.value is None else f"{g.value:.6g}", "met" if g.met else "NOT MET"]
        for g in gates
    ]
    return out + _table(["gate", "run", "value", "verdict"], rows, "llrl") + [""]


def to_markdown(res: CompareResult, gates: Sequence[GateResult] = ()) -> str:
    boot = (
        f"paired bootstrap over shared images: {res.n_boot} resamples, seed {res.seed}, "
        "95 % percentile CI"
    )
    out = ["# coordbench compare", "", f"Baseline: **{res.baseline or '-'}**; {boot}.", ""]
    if res.caveats:
        out += ["## Caveats", "", *(f"- {c}" for c in res.caveats), ""]
    out += _runs_md(res) + [""]
    for p in res.pairs:
        out += _pair_md(p, res.top_k)
    out += _groups_md(res) + _single_md(res) + gates_md(gates)
    return "\n".join(out).rstrip() + "\n"


CSV_COLUMNS = (
    # section: caveat, gate, run, delta, per_class, per_image, group, group_delta, single_vs_group
    "section",
    "run",
    "baseline",
    "metric",
    "value",
    "baseline_value",
    "delta",
    "delta_pct",
    "ci_low",
    "ci_high",
    "std",
    "z",
    "p_value",
    "test",
    "verdict",
    "n_samples",
    "n_runs",
    "category",
    "sample",
    "image",
    "n_gt",
    "pred",
    "baseline_pred",
    "members",
    "text",
)


def _caveat_rows(res: CompareResult, gates: Sequence[GateResult]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"section": "caveat", "text": c} for c in res.caveats]
    rows += [
        {
            "section": "gate",
            "run": g.run,
            "metric": g.rule,  # the rule names its metric: `mAP >= 0.5`
            "value": g.value,
            "verdict": "met" if g.met else "NOT MET",
            "text": g.detail,
        }
        for g in gates
    ]
    return rows


def _pair_rows(p: PairResult) -> list[dict[str, Any]]:
    base = {"run": p.run, "baseline": p.baseline}
    rows: list[dict[str, Any]] = [
        {
            "section": "delta",
            **base,
            "metric": d.metric,
            "value": d.value,
            "baseline_value": d.baseline,
            "delta": d.delta,
            "delta_pct": d.delta_pct,
            "ci_low": d.ci_low,
            "ci_high": d.ci_high,
            "verdict": d.verdict,
            "n_samples": p.n_shared,
        }
        for d in p.deltas
    ]
    rows += [
        {
            "section": "per_class",
            **base,
            "metric": "AP",
            "category": c.category,
            "value": c.ap_run,
            "baseline_value": c.ap_baseline,
            "delta": c.delta,
            "n_gt": c.n_gt,
        }
        for c in [*p.per_class_gains, *p.per_class_losses]
    ]
    rows += [
        {
            "section": "per_image",
            **base,
            "metric": "tp_full@0.50",
            "sample": i.sample,
            "image": i.image,
            "value": i.tp_run,
            "baseline_value": i.tp_baseline,
            "delta": i.delta,
            "n_gt": i.n_gt,
            "pred": i.pred_run,
            "baseline_pred": i.pred_baseline,
        }
        for i in [*p.per_image_gains, *p.per_image_losses]
    ]
    return rows


def _group_rows(res: CompareResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "section": "group",
            "run": g.label,
            "metric": m,
            "value": g.mean.get(m),
            "std": g.std.get(m),
            "n_runs": g.n,
            "members": " ".join(g.members),
        }
        for g in res.groups
        for m in res.metrics
    ]
    rows += [
        {
            "section": "group_delta",
            "run": d.group,
            "baseline": d.baseline_group,
            "metric": d.metric,
            "value": d.mean_run,
            "baseline_value": d.mean_baseline,
            "delta": d.delta,
            "p_value": d.p_value,
            "test": d.test,
            "verdict": d.verdict,
        }
        for d in res.group_deltas
    ]
    rows += [
        {
            "section": "single_vs_group",
            "run": d.run,
            "baseline": d.group,
            "metric": d.metric,
            "value": d.value,
            "baseline_value": d.group_mean,
            "delta": d.delta,
            "std": d.group_std,
            "z": d.z,
            "verdict": d.verdict,
        }
        for d in res.single_vs_group
    ]
    return rows


def _csv_rows(res: CompareResult, gates: Sequence[GateResult]) -> list[dict[str, Any]]:
    rows = _caveat_rows(res, gates)
    for r in res.runs:
        rows += [
            {
                "section": "run",
                "run": r.name,
                "metric": m,
                "value": v,
                "n_samples": r.n_samples,
                "text": r.partial or "",
            }
            for m, v in r.values.items()
        ]
    for p in res.pairs:
        rows += _pair_rows(p)
    return rows + _group_rows(res)


def to_csv(res: CompareResult, gates: Sequence[GateResult] = ()) -> str:
    """Tidy CSV: one row per (section, run, metric), the same columns for every section; a column
    holds one kind of value everywhere (empty where it does not apply)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in _csv_rows(res, gates):
        w.writerow({k: ("" if row.get(k) is None else safe_cell(row.get(k))) for k in CSV_COLUMNS})
    return buf.getvalue()


LATEX_METRICS = ("mAP", "AP50", "AP75", "AR100", "F1@0.5", "F1loc@0.5")
_TEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "\\": r"\textbackslash{}",
}


def tex(text: str) -> str:
    """Escape LaTeX special characters in a run or metric name, one character at a time (so
    the braces of `\textbackslash{}` are not escaped again)."""
    return "".join(_TEX_SPECIAL.get(c, c) for c in str(text))


def _best(res: CompareResult, metric: str) -> float | None:
    spec = BY_LABEL.get(metric.lower())
    vals = [v for r in res.runs if (v := r.values.get(metric)) is not None and not math.isnan(v)]
    if not vals or spec is None or spec.direction == 0:
        return None
    return max(vals) if spec.direction > 0 else min(vals)


def _latex_cell(res: CompareResult, run: str, metric: str) -> str:
    v = res.value(run, metric)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "--"
    cell = fmt_value(metric, v)
    if _best(res, metric) == v:
        cell = rf"\textbf{{{cell}}}"
    d = res.delta(run, metric)
    if d is not None and d.delta is not None:
        ci = (
            ""
            if d.ci_low is None or d.ci_high is None
            else f" [{fmt_delta(metric, d.ci_low)}, {fmt_delta(metric, d.ci_high)}]"
        )
        cell += rf" {{\scriptsize $\Delta$ {fmt_delta(metric, d.delta)}{ci}}}"
    return cell


def to_latex(res: CompareResult, gates: Sequence[GateResult] = ()) -> str:
    """A booktabs table of the headline metrics: one row per run, Δ against the baseline with
    its paired-bootstrap 95 % CI under each value, the best value of each column in bold."""
    metrics = [m for m in LATEX_METRICS if m in res.metrics]
    lines = [
        "% coordbench compare: needs \\usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "r" * len(metrics) + "}",
        r"\toprule",
        "Run & " + " & ".join(tex(m) for m in metrics) + r" \\",
        r"\midrule",
    ]
    for r in res.runs:
        name = tex(r.name) + (" (baseline)" if r.name == res.baseline else "")
        cells = [_latex_cell(res, r.name, m) for m in metrics]
        lines.append(" & ".join([name, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = (
        f"Detection metrics on {res.runs[0].n_samples if res.runs else 0} images. $\\Delta$: "
        f"difference to {tex(res.baseline or '-')} with a paired-bootstrap 95\\% CI "
        f"({res.n_boot} resamples over images). Best value per column in bold."
    )
    lines += [rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_json(res: CompareResult, gates: Sequence[GateResult] = ()) -> str:
    from dataclasses import asdict

    data = {**res.to_dict(), "gates": [asdict(g) for g in gates]}
    return (
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n"
    )


def render(res: CompareResult, fmt: str, gates: Sequence[GateResult] = ()) -> str:
    return {"md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}[fmt](res, gates)
