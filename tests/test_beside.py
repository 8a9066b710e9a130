"""The forked side computation of a large evaluation ([ARCH-EVAL-SPEED]): same results with
and without the child, and every failure of the child falls back to computing in the parent."""

from __future__ import annotations

import os
import sys

import pytest

from coordbench.metrics import beside as B

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")


@pytest.fixture
def forking(monkeypatch):
    """Fork even here: the functions forked below run plain Python only."""
    monkeypatch.setattr(B, "MIN_ROWS", 0)
    monkeypatch.setattr(B, "_cores", lambda: 2)
    monkeypatch.setattr(B, "_threads_running", lambda: False)
    assert B.can_fork(1)


def _pid_and(x):
    return os.getpid(), x * 2


def test_the_child_computes_and_the_parent_gets_the_value(forking):
    with B.beside(_pid_and, 21, rows=1) as job:
        assert job.pid is not None
        pid, value = job.result()
    assert value == 42 and pid != os.getpid()


def _fails_in_child(parent: int):
    if os.getpid() != parent:
        raise RuntimeError("child only")
    return "computed by the parent"


def test_a_failing_child_is_recomputed_in_the_parent(forking):
    with B.beside(_fails_in_child, os.getpid(), rows=1) as job:
        assert job.result() == "computed by the parent"


def _raises():
    raise ValueError("bad input")


def test_an_error_of_the_function_surfaces_as_without_a_child(forking):
    with pytest.raises(ValueError, match="bad input"), B.beside(_raises, rows=1) as job:
        job.result()


def _unpicklable():
    return lambda: None


def test_an_unpicklable_result_is_computed_here(forking):
    with B.beside(_unpicklable, rows=1) as job:
        assert callable(job.result())


def test_no_child_when_disabled_small_or_threaded(monkeypatch):
    monkeypatch.setattr(B, "_cores", lambda: 2)
    assert not B.can_fork(B.MIN_ROWS - 1)
    monkeypatch.setenv(B.ENV, "0")
    assert not B.can_fork(B.MIN_ROWS)
    monkeypatch.delenv(B.ENV)
    monkeypatch.setattr(B, "_cores", lambda: 1)
    assert not B.can_fork(B.MIN_ROWS)


def test_leaving_early_reaps_the_child(forking):
    with pytest.raises(KeyError), B.beside(_pid_and, 1, rows=1) as job:
        pid = job.pid
        raise KeyError("parent failed first")
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left


CHILD_VS_ALONE = """
import os, sys
sys.path.insert(0, sys.argv[1])
import orjson
from coordbench.metrics import beside as B
from coordbench.metrics.result import EvalOptions
from coordbench.metrics.scoring import evaluate_records
from test_eval_columns import _RandomEncoder, _records, _strip
B.MIN_ROWS = 0
B._cores = lambda: 2
assert B.can_fork(1), "no fork here"
started = []
real = B.Job._start
B.Job._start = lambda self: (started.append(1), real(self))
recs = _records(11, n=50)
def run():
    r = evaluate_records(recs, EvalOptions(), encoder=_RandomEncoder())
    return [_strip(r.metrics), r.per_class, _strip(r.calibration), r.coco_preds, r.matches]
with_child = run()
assert started, "the child did not run"
os.environ[B.ENV] = "0"
assert run() == with_child
print("same")
"""


def test_evaluation_with_the_child_equals_the_evaluation_without(tmp_path):
    """In a fresh process (no torch loaded, one thread): the real fork path."""
    import subprocess

    tests = os.path.dirname(__file__)
    env = {**os.environ, B.ENV: "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD_VS_ALONE, tests], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same"
