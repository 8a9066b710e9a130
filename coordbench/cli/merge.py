"""`coordbench merge`.

Command modules import click and light config at module level only; the library is imported
inside the command, so `coordbench --help` does not pay for numpy, PIL or the scorers.
"""

from __future__ import annotations

from pathlib import Path

import click

from coordbench.cli.common import CONTEXT, friendly_errors, print_run


@click.command("merge", context_settings=CONTEXT)
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out", type=click.Path(), help="Merged run dir (default: the run dir holding the shards)."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out when it holds a run of another identity (only a run dir, never a folder "
    "without run.json).",
)
@friendly_errors
def merge(dirs: tuple[str, ...], out: str | None, overwrite: bool) -> None:
    """Merge `--shard i/N` runs: validates identities and coverage, then scores.

    \b
    Examples:
      coordbench merge output/runs/big                 # a run dir with shards/ inside
      coordbench merge runs/s0 runs/s1 --out runs/all  # separate shard run dirs
    """
    from coordbench.pipeline.merge import merge_and_score, shard_lines
    from coordbench.rundir.files import RUN_JSON, read_json

    run_dir, summary = merge_and_score(
        [Path(d) for d in dirs], Path(out) if out else None, overwrite=overwrite
    )
    for line in shard_lines(read_json(run_dir / RUN_JSON)):
        click.echo(line)
    print_run(run_dir, summary)
