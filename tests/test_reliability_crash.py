"""Crash-resume: `coordbench run` killed with SIGKILL at several points, then re-run with the same
command, ends with artifacts byte-identical to an uninterrupted run (greedy and sampled).

The uninterrupted references are separate processes with the same arguments; the file sets must
match too (no temp files or lock left behind). Only run.json (provenance: timings, sessions) and
report.html (prints timings) may differ.
"""

from __future__ import annotations

import pytest

from coordbench import artifacts as A
from tests.test_reliability_support import (
    N_SAMPLES,
    SAMPLED,
    assert_clean_error,
    assert_same_artifacts,
    assets,
    copy_run,
    kill9,
    line_count,
    popen_cli,
    reference_run,
    run_args,
    run_cli,
    sessions,
    wait_for,
)

pytestmark = pytest.mark.slow


def _resume(args: list[str]) -> None:
    p = run_cli(args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr


def test_kill9_after_first_batch_line_resumes_identically(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "greedy")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r")
    rd = tmp_path / "r"
    proc = popen_cli(args)
    wait_for(lambda: line_count(rd / A.GT_VS_PRED) >= 1, proc)
    kill9(proc)  # a real, asynchronous kill -9 while generation is under way
    kept = line_count(rd / A.GT_VS_PRED)
    assert 1 <= kept < N_SAMPLES and not (rd / A.SUMMARY).exists()
    assert (rd / A.LOCK).exists()  # the dead process's lock: stale, taken over by the re-run
    _resume(args)
    assert_same_artifacts(ref, rd)
    last = sessions(rd)[-1]
    assert last["resumed_from"] == kept - kept % 2 and last["resumed_from"] + last["generated"] == N_SAMPLES


def test_torn_record_line_sampled_resumes_identically(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "sampled")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r", *SAMPLED)
    p = run_cli(args, fault=f"{A.GT_VS_PRED}:3:torn")  # killed half-way through batch 3's last line
    assert p.returncode == -9, p.stderr[-3000:]
    data = (tmp_path / "r" / A.GT_VS_PRED).read_bytes()
    assert data.count(b"\n") == 5 and not data.endswith(b"\n")  # 2 batches + 1 line, then a torn one
    _resume(args)
    assert_same_artifacts(ref, tmp_path / "r")
    last = sessions(tmp_path / "r")[-1]  # line 5 was whole, but its batch is redone whole
    assert (last["resumed_from"], last["generated"]) == (4, 4)


def test_kill_between_trace_and_record_append_resumes_identically(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "greedy")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r")
    rd = tmp_path / "r"
    p = run_cli(args, fault=f"{A.TRACE}:2:kill")  # batch 2's trace is written, its records are not
    assert p.returncode == -9, p.stderr[-3000:]
    assert line_count(rd / A.TRACE) == 4 and line_count(rd / A.GT_VS_PRED) == 2
    _resume(args)
    assert_same_artifacts(ref, rd)
    assert sessions(rd)[-1]["resumed_from"] == 2


def test_kill9_during_scoring_resumes_identically(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory, "greedy")
    a = assets(tmp_path_factory)
    args = run_args(a, tmp_path, "r")
    rd = tmp_path / "r"
    p = run_cli(args, fault="metrics.json:1:kill")  # eval/metrics.json's temp file written, not renamed
    assert p.returncode == -9, p.stderr[-3000:]
    assert line_count(rd / A.GT_VS_PRED) == N_SAMPLES and (rd / A.SCORED).exists()
    assert not (rd / A.SUMMARY).exists() and list((rd / "eval").glob(".metrics.json.tmp.*"))
    _resume(args)
    assert_same_artifacts(ref, rd)  # includes: the dead writer's temp file is gone
    assert sessions(rd)[-1]["resumed_from"] == N_SAMPLES and sessions(rd)[-1]["generated"] == 0


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
