"""Help that answers: every option documented, no flag clash, range errors name flag and value."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from coordbench.cli.main import main


def _commands(cmd: click.Command, path: tuple[str, ...] = ("coordbench",)):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


ALL = list(_commands(main))


def test_walk_finds_every_command():
    names = {" ".join(p[1:]) for p, _ in ALL}
    assert {"run", "eval", "merge", "compare", "log", "export coco-results"} <= names


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p[1:]) for p, _ in ALL])
def test_every_visible_option_has_a_one_line_help(path, cmd):
    missing = [
        p.opts[0]
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]
    assert not missing, f"{' '.join(path)}: options without help: {missing}"
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no description"


def test_compare_rows_flag_no_longer_clashes_with_sampling_top_k():
    out = CliRunner().invoke(main, ["compare", "--help"]).output
    assert "--top-changes" in out and "--top-k" not in out
    assert "--top-k" in CliRunner().invoke(main, ["run", "--help"]).output


def test_shard_help_says_zero_based_and_auto():
    out = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert "0-based" in out and "auto" in out and "SLURM_ARRAY_TASK_ID" in out


def test_export_help_shows_the_full_eval_command():
    out = " ".join(CliRunner().invoke(main, ["export", "coco-results", "--help"]).output.split())
    assert "coordbench eval RUN_DIR --original-scale instances_val2017.json" in out


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--temperature", "-1"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
        ("--top-k", "-1"),
        ("--repetition-penalty", "0"),
        ("--max-new-tokens", "0"),
        ("--semantic-threshold", "2"),
        ("--limit", "-1"),
        ("--batch-size", "0"),
        ("--shard", "2/2"),
    ],
)
def test_range_errors_name_the_flag_and_the_value(flag, value, tmp_path):
    r = CliRunner().invoke(main, ["run", flag, value, "--out", str(tmp_path)])
    assert r.exit_code == 2
    err = r.output.strip()
    assert err.startswith("error: ") and flag in err
    assert value.lstrip("-") in err  # -1 may print as -1.0; 2/2 as 2/2
    assert not any(tmp_path.iterdir())  # refused before anything was written
