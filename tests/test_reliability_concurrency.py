"""Two `coordbench run` processes on one run dir: the second refuses with a message naming the
holder's pid; a lock left by a dead process is taken over and the run completes unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coordbench.rundir import files as A
from tests.test_reliability_support import (
    assert_clean_error,
    assert_same_artifacts,
    assets,
    copy_run,
    kill9,
    line_count,
    popen_held,
    reference_run,
    run_args,
    run_cli,
    sessions,
)


@pytest.mark.slow
def test_second_run_refuses_then_takes_over_the_dead_holders_lock(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "greedy")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r")
    rd = tmp_path / "r"
    holder = popen_held(args, tmp_path, batch=1)  # stops mid-run
    try:
        assert (rd / A.LOCK).read_text() == str(holder.pid)
        for extra in ((), ("--seed", "1")):  # same run, and a run with another identity
            p = run_cli(args + list(extra))
            assert_clean_error(p, f"in use by process {holder.pid}", str(rd), "--name")
        assert line_count(rd / A.GT_VS_PRED) == 2  # the refusals touched nothing
    finally:
        kill9(holder)
    assert (rd / A.LOCK).read_text() == str(holder.pid)  # stale now: its process is dead
    p = run_cli(args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sessions(rd)[-1]["resumed_from"] == 2
    assert_same_artifacts(ref, rd)


@pytest.mark.parametrize("content", ["dead", "", "not-a-pid"])
def test_stale_or_garbled_lock_is_taken_over(tmp_path_factory, tmp_path, content):
    ref = reference_run(tmp_path_factory, "greedy")
    rd = copy_run(ref, tmp_path, "r")
    if content == "dead":
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        content = str(dead.pid)
    (rd / A.LOCK).write_text(content)
    p = run_cli(run_args(assets(tmp_path_factory), tmp_path, "r"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "already complete" in p.stdout  # finished: the lock is taken over, nothing rewritten
    assert len(sessions(rd)) == len(sessions(ref))
    assert_same_artifacts(ref, rd)
