"""Render a CompareResult (and gate verdicts) as markdown, CSV (long format) or JSON.

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

from coordbench.compare.metrics import BY_LABEL
from coordbench.rundir.csvcells import safe_cell

if TYPE_CHECKING:  # annotations only
    from coordbench.compare.core import CompareResult, PairResult
    from coordbench.compare.gates import GateResult

PITFALL_33 = (
    "Per-class AP on a few hundred images is dominated by classes with 1-2 GT instances "
    "(±1.0 swings): read the GT column before the Δ (upstream pitfall 33)."
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
        out += _table(["category", "GT", p.baseline, p.run, "Δ AP"], rows) + ["", PITFALL_33, ""]
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
    out += _groups_md(res) + gates_md(gates)
    return "\n".join(out).rstrip() + "\n"


CSV_COLUMNS = (
    "section",
    "run",
    "baseline",
    "metric",
    "baseline_value",
    "value",
    "delta",
    "delta_pct",
    "ci_low",
    "ci_high",
    "verdict",
    "n",
    "note",
)


def _csv_rows(res: CompareResult, gates: Sequence[GateResult]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"section": "caveat", "note": c} for c in res.caveats]
    for r in res.runs:
        rows += [
            {
                "section": "run",
                "run": r.name,
                "metric": m,
                "value": v,
                "n": r.n_samples,
                "note": r.partial or "",
            }
            for m, v in r.values.items()
        ]
    for p in res.pairs:
        base = {"run": p.run, "baseline": p.baseline}
        rows += [
            {
                "section": "delta",
                **base,
                "metric": d.metric,
                "baseline_value": d.baseline,
                "value": d.value,
                "delta": d.delta,
                "delta_pct": d.delta_pct,
                "ci_low": d.ci_low,
                "ci_high": d.ci_high,
                "verdict": d.verdict,
                "n": p.n_shared,
            }
            for d in p.deltas
        ]
        rows += [
            {
                "section": "per_class",
                **base,
                "metric": c.category,
                "baseline_value": c.ap_baseline,
                "value": c.ap_run,
                "delta": c.delta,
                "n": c.n_gt,
            }
            for c in [*p.per_class_gains, *p.per_class_losses]
        ]
        rows += [
            {
                "section": "per_image",
                **base,
                "metric": i.sample,
                "baseline_value": i.tp_baseline,
                "value": i.tp_run,
                "delta": i.delta,
                "n": i.n_gt,
                "note": i.image,
            }
            for i in [*p.per_image_gains, *p.per_image_losses]
        ]
    for g in res.groups:
        rows += [
            {
                "section": "group",
                "run": g.label,
                "metric": m,
                "value": g.mean.get(m),
                "n": g.n,
                "note": f"std {g.std.get(m)}; members {' '.join(g.members)}",
            }
            for m in res.metrics
        ]
    rows += [
        {
            "section": "group_delta",
            "run": d.group,
            "baseline": d.baseline_group,
            "metric": d.metric,
            "baseline_value": d.mean_baseline,
            "value": d.mean_run,
            "delta": d.delta,
            "verdict": d.verdict,
            "note": f"{d.test} p={d.p_value}",
        }
        for d in res.group_deltas
    ]
    rows += [
        {
            "section": "gate",
            "run": g.run,
            "metric": g.rule,
            "value": g.value,
            "verdict": "met" if g.met else "NOT MET",
            "note": g.detail,
        }
        for g in gates
    ]
    return rows


def to_csv(res: CompareResult, gates: Sequence[GateResult] = ()) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in _csv_rows(res, gates):
        w.writerow({k: ("" if row.get(k) is None else safe_cell(row.get(k))) for k in CSV_COLUMNS})
    return buf.getvalue()


def to_json(res: CompareResult, gates: Sequence[GateResult] = ()) -> str:
    from dataclasses import asdict

    data = {**res.to_dict(), "gates": [asdict(g) for g in gates]}
    return (
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n"
    )


def render(res: CompareResult, fmt: str, gates: Sequence[GateResult] = ()) -> str:
    return {"md": to_markdown, "csv": to_csv, "json": to_json}[fmt](res, gates)
