"""What every click command module shares: help options, one-line errors, the run table."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from coordbench.errors import CoordbenchError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def friendly_errors(fn):
    """CoordbenchError -> one `error:` line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CoordbenchError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: finished batches are saved; re-run the same command to resume",
                err=True,
            )
            sys.exit(130)

    return wrapper


def print_run(run_dir: Path, summary: dict) -> None:
    """The end-of-run table (summary plus run.json provenance)."""
    from coordbench.metrics.summary import format_summary
    from coordbench.rundir.files import RUN_JSON, read_json
    from coordbench.tasks import task_of

    head = read_json(run_dir / RUN_JSON)
    task = task_of(head.get("identity"))
    text = format_summary(
        summary,
        head.get("provenance", {}),
        str(run_dir),
        headline=task.headline_keys(),
        counts=task.count_keys(),
    )
    click.echo(text)


def print_group(cfg, odinw_root: str | None, rescore: bool) -> None:  # noqa: ANN001
    """Run a benchmark group (odinw13) and print its per-member table and mean; a member that
    failed makes the command fail after the others ran."""
    from coordbench.pipeline.group import format_group_summary, run_group

    out = run_group(cfg, odinw_root, rescore=rescore)
    click.echo(format_group_summary(out["summary"], Path(out["group_dir"])))
    failed = {m: r for m, r in out["results"].items() if isinstance(r, str)}
    if failed:
        raise CoordbenchError(
            f"{len(failed)} member(s) failed: "
            + "; ".join(f"{m}: {r}" for m, r in failed.items())
            + " (re-run the same command to resume them)"
        )
