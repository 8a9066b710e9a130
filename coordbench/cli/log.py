"""`coordbench log`.

Command modules import click and light config at module level only; the library is imported
inside the command, so `coordbench --help` does not pay for numpy, PIL or the scorers.
"""

from __future__ import annotations

import click

from coordbench.cli.common import CONTEXT, friendly_errors


@click.command("log", context_settings=CONTEXT)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "csv", "json"]),
    default="md",
    show_default=True,
    help="md: a table; csv: one row per entry; json: the entries as written.",
)
@click.option(
    "--path",
    type=click.Path(dir_okay=False),
    help="Log file (default: $COORDBENCH_BENCHMARK_LOG or output/benchmark_log.jsonl).",
)
@click.option("--last", type=click.IntRange(min=1), help="Only the last N entries.")
@click.option("--since", help="Only entries at or after this UTC date/time (YYYY-MM-DD[THH:MM]).")
@friendly_errors
def log_cmd(fmt: str, path: str | None, last: int | None, since: str | None) -> None:
    """Show the append-only benchmark log (one entry per run and compare).

    \b
    Examples:
      coordbench log
      coordbench log --last 20 --format json
      coordbench log --since 2026-01-15 --format csv > log.csv
    """
    from coordbench.compare.benchlog import default_log_path, read_log, render_log, select_entries

    entries, skipped = read_log(path or default_log_path())
    entries = select_entries(entries, last=last, since=since)
    click.echo(render_log(entries, fmt, skipped), nl=False)
