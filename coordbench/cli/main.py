"""The `coordbench` command line: thin click commands over the library API."""

from __future__ import annotations

import logging

import click

from coordbench import __version__
from coordbench.cli.common import CONTEXT
from coordbench.cli.compare import compare_cmd
from coordbench.cli.data import data_group
from coordbench.cli.eval import eval_cmd
from coordbench.cli.export import export_group
from coordbench.cli.log import log_cmd
from coordbench.cli.merge import merge
from coordbench.cli.run import run
from coordbench.cli.suite import suite_cmd


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="coordbench")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Detection benchmarks for vision-language checkpoints that print boxes as text.

    \b
    Examples:
      coordbench run                                     # embedded default model + data, on CPU
      coordbench run --ckpt path/to/merged --preset 768 --limit 200
      coordbench eval output/runs/NAME                   # re-parse and re-score a run, no model
      coordbench compare output/runs/a output/runs/b     # is B really better than A?
      torchrun --nproc_per_node 8 -m coordbench run --ckpt ... --preset 768
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )


for command, name in (
    (run, "run"),
    (eval_cmd, "eval"),
    (merge, "merge"),
    (compare_cmd, "compare"),
    (suite_cmd, "suite"),
    (log_cmd, "log"),
    (data_group, "data"),
    (export_group, "export"),
):
    main.add_command(command, name)

if __name__ == "__main__":  # pragma: no cover
    main()
