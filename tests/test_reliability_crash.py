"""Crash-resume: `coordbench run` killed with SIGKILL (or Ctrl-C) at several points, then re-run
with the same command, ends with artifacts byte-identical to an uninterrupted run (greedy and
sampled). Each test chains several crashes, so resumed sessions are crashed too.

The uninterrupted references are separate processes with the same arguments; the file sets must
match too (no temp files or lock left behind). Only run.json (provenance: timings, sessions) and
report.html (prints timings) may differ.
"""

from __future__ import annotations

import signal

import pytest

from coordbench.rundir import files as A
from tests.test_reliability_support import (
    BATCH,
    N_SAMPLES,
    SAMPLED,
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

pytestmark = pytest.mark.slow


def _resume(args: list[str]) -> None:
    p = run_cli(args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr


def test_greedy_run_killed_three_times_resumes_identically(tmp_path_factory, tmp_path):
    """kill -9 mid-generation, then SIGKILL between a batch's trace and its records in the resumed
    session, then SIGKILL while scoring; the fourth start only re-scores."""
    ref = reference_run(tmp_path_factory, "greedy")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r")
    rd = tmp_path / "r"

    proc = popen_held(args, tmp_path, batch=2)  # a fast child cannot finish first
    kill9(proc)  # a real kill -9 from outside, in the middle of the run
    kept = line_count(rd / A.GT_VS_PRED)
    assert 1 <= kept < N_SAMPLES and not (rd / A.SUMMARY).exists()
    assert (rd / A.LOCK).exists()  # the dead process's lock: stale, taken over by the re-run
    done = kept - kept % BATCH

    p = run_cli(args, fault=f"{A.TRACE}:1:kill")  # a batch's trace is written, its records are not
    assert p.returncode == -9, p.stderr[-3000:]
    assert line_count(rd / A.GT_VS_PRED) == done and line_count(rd / A.TRACE) == done + BATCH

    p = run_cli(args, fault="metrics.json:1:kill")  # eval/metrics.json's temp file, not renamed
    assert p.returncode == -9, p.stderr[-3000:]
    assert line_count(rd / A.GT_VS_PRED) == N_SAMPLES and (rd / A.SCORED).exists()
    assert not (rd / A.SUMMARY).exists() and list((rd / "eval").glob(".metrics.json.tmp.*"))

    _resume(args)
    assert_same_artifacts(ref, rd)  # includes: the dead writers' temp files and lock are gone
    gen, score = sessions(rd)[-2:]
    assert (gen["resumed_from"], gen["generated"]) == (done, N_SAMPLES - done)
    assert (score["resumed_from"], score["generated"]) == (N_SAMPLES, 0)


def test_sampled_run_interrupted_then_torn_resumes_identically(tmp_path_factory, tmp_path):
    """Ctrl-C mid-generation (clean exit 130), then SIGKILL half-way through writing a batch's
    last record line in the resumed session."""
    ref = reference_run(tmp_path_factory, "sampled")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r", *SAMPLED)
    rd = tmp_path / "r"

    # Ctrl-C while the run is held inside its second batch's record write: a racing SIGINT let
    # a fast child finish first on a loaded machine (exit 0, seen once under a full `make test`)
    proc = popen_held(args, tmp_path, batch=2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "interrupted: finished batches are saved" in err
    kept = line_count(rd / A.GT_VS_PRED)
    assert not (rd / A.LOCK).exists() and BATCH <= kept < N_SAMPLES
    done = kept - kept % BATCH

    p = run_cli(
        args, fault=f"{A.GT_VS_PRED}:1:torn"
    )  # killed half-way through the batch's last line
    assert p.returncode == -9, p.stderr[-3000:]
    data = (rd / A.GT_VS_PRED).read_bytes()
    assert data.count(b"\n") == done + 1 and not data.endswith(b"\n")  # one whole line, one torn

    _resume(args)
    assert_same_artifacts(ref, rd)
    last = sessions(rd)[-1]  # the whole line's batch is redone whole (same batch, same bits)
    assert (last["resumed_from"], last["generated"]) == (done, N_SAMPLES - done)


def test_half_written_summary_and_torn_tail_are_rebuilt(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "sampled")
    a = assets(tmp_path_factory)
    rd = copy_run(ref, tmp_path, "r")
    summary = (rd / A.SUMMARY).read_bytes()
    (rd / A.SUMMARY).write_bytes(summary[: len(summary) // 2])
    with open(rd / A.GT_VS_PRED, "ab") as f:
        f.write(b'{"image": "images/val/00003.jpg", "wid')
    (rd / "eval" / "per_class.csv").unlink()
    _resume(run_args(a, tmp_path, "r", *SAMPLED))
    assert_same_artifacts(ref, rd)
    assert sessions(rd)[-1]["generated"] == 0


def test_corrupt_run_json_with_records_refuses_and_keeps_them(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "greedy")
    a = assets(tmp_path_factory)
    rd = copy_run(ref, tmp_path, "r")
    head = (rd / A.RUN_JSON).read_bytes()
    (rd / A.RUN_JSON).write_bytes(head[: len(head) // 3])
    before = {n: (rd / n).read_bytes() for n in (A.GT_VS_PRED, A.TRACE)}
    p = run_cli(run_args(a, tmp_path, "r"))
    assert_clean_error(p, str(rd / A.RUN_JSON), "--overwrite")
    assert {n: (rd / n).read_bytes() for n in before} == before
    assert not (rd / A.LOCK).exists()
