"""`coordbench compare` and `coordbench log`; `cli.py` calls `register(main)` at import.

Kept light: click only at module level; the comparison code is imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from coordbench.cli.common import CONTEXT, friendly_errors


@click.command("compare", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--baseline", help="Run to compare against: its name or path (default: the first complete run)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "csv", "json", "latex"]),
    default="md",
    show_default=True,
    help="md: tables for the terminal; csv: tidy, one row per (section, run, metric); "
    "json; latex: booktabs table of headline metrics.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Write the report to FILE instead of stdout."
)
@click.option(
    "--gates",
    type=click.Path(dir_okay=False),
    help="Gates TOML (configs/gates/*.toml); exit 1 if one is NOT MET.",
)
@click.option(
    "--n-boot",
    type=int,
    default=1000,
    show_default=True,
    help="Paired bootstrap resamples (0: no CIs).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--top-changes",
    "top_changes",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Per-class / per-image rows shown each way (largest gains and losses).",
)
@click.option("--top-k", "top_k_alias", type=int, hidden=True)  # deprecated: clashed with run
@click.option(
    "--group-by",
    default="seed",
    show_default=True,
    help=(
        "Identity key whose otherwise-identical runs aggregate as mean ± std (seed, dataset, ...)."
    ),
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False),
    help=(
        "Benchmark log to append to "
        "(default: $COORDBENCH_BENCHMARK_LOG or next to the runs folder)."
    ),
)
@click.option("--no-log", is_flag=True, help="Do not append to the benchmark log.")
@click.option("--rows", help="Pivot: identity axis of the rows (checkpoint, preset, prompt, ...).")
@click.option("--cols", help="Pivot: axis with one table per level, e.g. preset (needs --rows).")
@friendly_errors
def compare_cmd(
    runs: tuple[str, ...],
    baseline: str | None,
    fmt: str,
    out: str | None,
    gates: str | None,
    n_boot: int,
    seed: int,
    top_changes: int,
    top_k_alias: int | None,
    group_by: str,
    log_path: str | None,
    no_log: bool,
    rows: str | None = None,
    cols: str | None = None,
) -> None:
    """Is B really better than A? Deltas, paired bootstrap CIs, caveats, gates.

    RUNS are run dirs (or their summary.json); the first complete one is the baseline.

    \b
    Examples:
      coordbench compare output/runs/a output/runs/b
      coordbench compare output/runs/*_s* --group-by seed            # mean ± std over seeds
      coordbench compare a b --gates configs/gates/example.toml      # exit 1 if a gate fails
      coordbench compare a b --format json --out cmp.json
      coordbench compare output/runs/* --rows checkpoint --cols preset  # a table per preset
    """
    from coordbench.compare.benchlog import append_compare_entry
    from coordbench.compare.core import compare_runs
    from coordbench.compare.format import render
    from coordbench.compare.gates import evaluate_gates, load_gates
    from coordbench.errors import ArtifactError
    from coordbench.rundir.guard import refuse_input_as_output, refuse_inside_run_dir

    if out:  # never over a run's own files or an input (a summary.json, the gates file)
        refuse_input_as_output(
            Path(out), [Path(r) for r in runs] + ([Path(gates)] if gates else [])
        )
        for r in runs:
            refuse_inside_run_dir(Path(out), Path(r) if Path(r).is_dir() else Path(r).parent)
    if len(runs) == 2 and all((Path(r) / "group.json").is_file() for r in runs):
        return _compare_groups(runs, fmt, out, n_boot, seed)  # benchmark groups (odinw13)
    if rows or cols:
        from coordbench.cli.pivot import pivot_cmd

        return pivot_cmd(runs, rows, cols, fmt, out, n_boot, seed)
    gate_list = load_gates(gates) if gates else []
    res = compare_runs(
        list(runs),
        baseline=baseline,
        n_boot=n_boot,
        seed=seed,
        top_k=top_changes if top_k_alias is None else top_k_alias,
        group_by=group_by,
        extra=list(dict.fromkeys(g.metric for g in gate_list)),
    )
    results = evaluate_gates(gate_list, res) if gate_list else []
    text = render(res, fmt, results)
    if out:
        from coordbench.rundir.files import utf8, write_bytes_atomic

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(Path(out), utf8(text))  # valid UTF-8 whatever a run name holds
        click.echo(f"wrote {out} ({len(res.caveats)} caveat(s))", err=True)
    else:
        click.echo(text, nl=False)
    if not no_log:
        try:
            append_compare_entry(res, results if gate_list else None, log_path)
        except ArtifactError as e:
            click.echo(f"warning: {e}", err=True)
    failed = [g for g in results if not g.met]
    if gate_list:
        click.echo(
            f"gates: {len(results) - len(failed)} of {len(results)} met"
            + "".join(
                f"\n  NOT MET: {g.rule} on {g.run} "
                f"(value {g.value}{'; ' + g.detail if g.detail else ''})"
                for g in failed
            ),
            err=True,
        )
    if failed:
        sys.exit(1)


def _compare_groups(runs: tuple[str, ...], fmt: str, out: str | None, n_boot: int, seed: int):
    """Two group dirs: per-member deltas and the unweighted mean's delta with CIs."""
    import json

    from coordbench.compare.group_compare import compare_groups, to_markdown

    res = compare_groups(runs[0], runs[1], n_boot=n_boot, seed=seed)
    text = json.dumps(res, indent=2) + "\n" if fmt == "json" else to_markdown(res)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
