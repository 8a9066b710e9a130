"""`coordbench suite FILE.toml`: a paper's matrix as one batch job, ending in its tables."""

from __future__ import annotations

import os
import sys

import click

from coordbench.cli.common import CONTEXT, friendly_errors
from coordbench.config.run import Shard

FORMATS = ("csv", "latex", "json")


def _plan_lines(statuses) -> list[str]:  # noqa: ANN001 - CellStatus list
    width = max(len(s.cell.name) for s in statuses)
    lines = [f"{len(statuses)} cells ({sum(s.state == 'done' for s in statuses)} done):"]
    for s in statuses:
        lines.append(f"  {s.cell.name:<{width}}  {s.state:<8} {s.detail}")
    return lines


def _cell_line(i: int, n: int, cell, res) -> str:  # noqa: ANN001
    if isinstance(res, str):
        return f"[{i}/{n}] {cell.name}: error: {res}"
    if not res:
        return f"[{i}/{n}] {cell.name}: done on this rank"
    if "already_complete" in res:
        return f"[{i}/{n}] {cell.name}: already complete ({res['already_complete']} samples)"
    m = res.get("metrics") or {}
    head = next(((k, v) for k, v in m.items() if isinstance(v, int | float)), None)
    what = f"{head[0]} {head[1]:.4f}" if head else "scored"
    return f"[{i}/{n}] {cell.name}: finished, {what}"


@click.command("suite", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(), help="Suite dir (default: output/suites/NAME).")
@click.option(
    "--plan", "plan_only", is_flag=True, help="Print the cells and what is done; run none."
)
@click.option(
    "--report", "report_only", is_flag=True, help="Rebuild the report from finished cells only."
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(FORMATS),
    multiple=True,
    help="Also write report.csv / report.tex / report.json (report.md is always written).",
)
@click.option(
    "--shard",
    help="i/N or `auto` (SLURM array): this job's share of the cells, each cell whole; a "
    "checkpoint's cells stay on one task where the array allows.",
)
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@friendly_errors
def suite_cmd(
    file: str,
    out: str | None,
    plan_only: bool,
    report_only: bool,
    formats: tuple[str, ...],
    shard: str | None,
    n_boot: int,
    seed: int,
) -> None:
    """Run every cell of a suite file (checkpoints x matrix axes), each checkpoint loaded once,
    then write the report (report.md: a table per level of the first axis, delta tables,
    caveats, takeaways, the cells' run dirs).

    \b
    Examples:
      coordbench suite configs/suite/example.toml --plan
      coordbench suite configs/suite/example.toml
      coordbench suite configs/suite/example.toml --report --format latex
      sbatch --array=0-2 --wrap "coordbench suite paper.toml --shard auto"
    """
    from coordbench.errors import ConfigError
    from coordbench.pipeline import suite as S

    if n_boot < 0:
        raise ConfigError(f"--n-boot must be >= 0, got {n_boot}")
    suite, root, cells = S.plan_suite(file, out)
    if plan_only or report_only:
        statuses = [S.cell_status(c) for c in cells]
        if plan_only:
            click.echo("\n".join(_plan_lines(statuses)))
            return
        S.write_suite_json(suite, root, statuses)
        _report(S, suite, root, statuses, formats, n_boot, seed)
        return
    _run(S, suite, root, cells, shard, formats, n_boot, seed)


def _run(S, suite, root, cells, shard, formats, n_boot, seed) -> None:  # noqa: ANN001, N803
    """Run this job's cells (rank 0 prints and reports), then the report when all are done."""
    mine = S.my_cells(cells, Shard.parse(shard, os.environ))
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if rank0:
        S.write_suite_json(suite, root, [S.cell_status(c) for c in cells])
    if shard and rank0:
        click.echo(f"shard {shard}: {len(mine)} of {len(cells)} cells", err=True)
    counter = iter(range(1, len(mine) + 1))

    def on_cell(cell, res) -> None:  # noqa: ANN001
        if rank0:
            click.echo(_cell_line(next(counter), len(mine), cell, res))

    results = S.run_cells(mine, on_cell)
    if not rank0:
        return
    statuses = [S.cell_status(c) for c in cells]
    if all(s.state == "done" for s in statuses) or not shard:
        _report(S, suite, root, statuses, formats, n_boot, seed)
    else:
        left = sum(s.state != "done" for s in statuses)
        click.echo(f"{left} cells of other tasks are not finished: report later with --report")
    if any(isinstance(r, str) for r in results.values()):
        sys.exit(2)


def _report(S, suite, root, statuses, formats, n_boot, seed) -> None:  # noqa: ANN001, N803
    res = S.build_report(suite, statuses, n_boot=n_boot, seed=seed)
    paths = S.write_report(root, res, f"coordbench suite: {suite.name}", formats)
    from coordbench.compare.suite_report import to_markdown

    click.echo(to_markdown(res, f"coordbench suite: {suite.name}"), nl=False)
    missing = [s.cell.name for s in statuses if s.state != "done"]
    if missing:
        click.echo(f"missing cells ({len(missing)}): {', '.join(missing)}", err=True)
    click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
