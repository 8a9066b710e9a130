"""`coordbench compare RUNS --rows A --cols B`: the suite's pivot tables for any run dirs."""

from __future__ import annotations

from pathlib import Path

import click


def pivot_cmd(
    runs: tuple[str, ...],
    rows: str | None,
    cols: str | None,
    fmt: str,
    out: str | None,
    n_boot: int,
    seed: int,
) -> None:
    """Load the runs, pivot them (a table per --cols level, --rows as rows) and print or write."""
    from coordbench.compare.core import _one_task
    from coordbench.compare.load import load_run, unique_names
    from coordbench.compare.pivot import pick_metrics, pivot_runs
    from coordbench.compare.suite_report import render
    from coordbench.errors import ConfigError

    if not (rows and cols):
        raise ConfigError("--rows and --cols go together, e.g. --rows checkpoint --cols preset")
    if n_boot < 0:
        raise ConfigError(f"--n-boot must be >= 0, got {n_boot}")
    data = [load_run(p) for p in runs]
    unique_names(data)
    specs = pick_metrics(_one_task(data))
    res = pivot_runs(data, rows, cols, specs, n_boot=n_boot, seed=seed)
    text = render(res, fmt)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(res.caveats)} caveat(s))", err=True)
    else:
        click.echo(text, nl=False)
