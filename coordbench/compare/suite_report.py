"""Render a PivotResult (the suite's report, `compare --rows/--cols`) as markdown, tidy CSV,
JSON or LaTeX, in `compare`'s conventions: caveats before any number, the same value, delta and
CI formats, CSV cells a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from coordbench.compare.format import _table, fmt_ci, fmt_delta, fmt_value, tex
from coordbench.compare.pivot import DeltaTable, LevelTable, PivotResult
from coordbench.rundir.csvcells import safe_cell


def _cell(metric: str, mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return fmt_value(metric, mean) + ("" if std is None else f" ± {fmt_value(metric, std)}")


def _title(t: LevelTable) -> str:
    return f"{t.axis} {t.level}" if t.axis else "all cells"


def _level_md(res: PivotResult, t: LevelTable) -> list[str]:
    header = [res.rows_axis, "bs", *res.metrics]
    rows = [
        [r.label, r.batch_size, *(_cell(m, r.mean.get(m), r.std.get(m)) for m in res.metrics)]
        for r in t.rows
    ]
    return [f"## {_title(t)}", "", *_table(header, rows), ""]


def _fixed(d: DeltaTable) -> str:
    return "".join(f", {a} {v}" for a, v in d.fixed.items())


def _delta_md(d: DeltaTable) -> list[str]:
    out = [
        f"### {d.row}: Delta ({d.axis} {d.level} − {d.base_level}{_fixed(d)})",
        "",
        f"{d.cell} vs {d.base_cell}, {d.n_shared} shared samples.",
        "",
    ]
    rows = [
        [
            x.metric,
            fmt_value(x.metric, x.baseline),
            fmt_value(x.metric, x.value),
            fmt_delta(x.metric, x.delta),
            fmt_ci(x.metric, x.ci_low, x.ci_high),
            x.verdict,
        ]
        for x in d.deltas
    ]
    out += _table(["metric", d.base_level, d.level, "Δ", "95 % CI", "verdict"], rows, "lrrrll")
    return out + [""] + [f"- {n}" for n in d.notes] + ([""] if d.notes else [])


def to_markdown(res: PivotResult, title: str = "coordbench pivot") -> str:
    boot = (
        f"paired bootstrap over shared images: {res.n_boot} resamples, seed {res.seed}, "
        "95 % percentile CI"
    )
    seeds = "; seeds as mean ± std" if "seed" in res.other_axes else ""
    out = [f"# {title}", "", f"Rows: {res.rows_axis}; {boot}{seeds}.", ""]
    if res.caveats:
        out += ["## Caveats", "", *(f"- {c}" for c in res.caveats), ""]
    for t in res.tables:
        out += _level_md(res, t)
    if res.deltas:
        out += ["## Deltas", ""]
        for d in res.deltas:
            out += _delta_md(d)
    if res.takeaways:
        out += ["## Takeaways", "", *(f"- {s}" for s in res.takeaways), ""]
    out += ["## Cells", ""]
    rows = [
        [c["name"], c["state"], c["run_dir"], (c["identity_hash"] or "-")[:12]] for c in res.cells
    ]
    out += _table(["cell", "state", "run dir", "identity"], rows, "llll")
    return "\n".join(out).rstrip() + "\n"


CSV_COLUMNS = (
    "section",  # caveat, table, delta, takeaway, cell
    "row",
    "axis",
    "level",
    "base_level",
    "fixed",
    "metric",
    "value",
    "std",
    "baseline_value",
    "delta",
    "ci_low",
    "ci_high",
    "verdict",
    "batch_size",
    "cells",
    "text",
)


def _csv_rows(res: PivotResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"section": "caveat", "text": c} for c in res.caveats]
    for t in res.tables:
        rows += [
            {
                "section": "table",
                "row": r.label,
                "axis": t.axis,
                "level": t.level,
                "metric": m,
                "value": r.mean.get(m),
                "std": r.std.get(m),
                "batch_size": r.batch_size,
                "cells": " ".join(r.members),
            }
            for r in t.rows
            for m in res.metrics
        ]
    for d in res.deltas:
        rows += [
            {
                "section": "delta",
                "row": d.row,
                "axis": d.axis,
                "level": d.level,
                "base_level": d.base_level,
                "fixed": " ".join(f"{a}={v}" for a, v in d.fixed.items()),
                "metric": x.metric,
                "value": x.value,
                "baseline_value": x.baseline,
                "delta": x.delta,
                "ci_low": x.ci_low,
                "ci_high": x.ci_high,
                "verdict": x.verdict,
                "cells": f"{d.base_cell} {d.cell}",
            }
            for x in d.deltas
        ]
    rows += [{"section": "takeaway", "text": s} for s in res.takeaways]
    rows += [
        {"section": "cell", "row": c["name"], "verdict": c["state"], "text": c["run_dir"]}
        for c in res.cells
    ]
    return rows


def to_csv(res: PivotResult) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in _csv_rows(res):
        w.writerow({k: ("" if row.get(k) is None else safe_cell(row.get(k))) for k in CSV_COLUMNS})
    return buf.getvalue()


def _latex_table(res: PivotResult, t: LevelTable) -> list[str]:
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lr" + "r" * len(res.metrics) + "}",
        r"\toprule",
        " & ".join([tex(res.rows_axis), "bs", *(tex(m) for m in res.metrics)]) + r" \\",
        r"\midrule",
    ]
    for r in t.rows:
        cells = [
            tex(_cell(m, r.mean.get(m), r.std.get(m))).replace("±", r"$\pm$") for m in res.metrics
        ]
        lines.append(" & ".join([tex(r.label), tex(r.batch_size), *cells]) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{tex(_title(t))}.}}",
        r"\end{table}",
    ]
    return lines


def to_latex(res: PivotResult) -> str:
    """One booktabs table per level of the column axis (`\\usepackage{booktabs}`)."""
    lines = ["% coordbench suite: needs \\usepackage{booktabs}"]
    for t in res.tables:
        lines += _latex_table(res, t)
    return "\n".join(lines) + "\n"


def to_json(res: PivotResult) -> str:
    return orjson.dumps(res.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"


FORMATS = {"md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}
SUFFIX = {"md": "md", "csv": "csv", "json": "json", "latex": "tex"}


def render(res: PivotResult, fmt: str) -> str:
    return FORMATS[fmt](res)
