"""Run-dir file handling: torn lines, atomic writes, locks, resume identity checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordbench.errors import ArtifactError, ResumeError
from coordbench.rundir import files as A
from coordbench.rundir.lock import run_lock
from coordbench.rundir.resume import check_resume, consistent_prefix


def test_read_jsonl_drops_torn_last_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3')
    rows, good = A.read_jsonl(p)
    assert rows == [{"a": 1}, {"a": 2}]
    assert good == len(b'{"a": 1}\n{"a": 2}\n')


def test_read_jsonl_rejects_corrupt_middle_line_naming_it(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(ArtifactError, match=r"x.jsonl:2"):
        A.read_jsonl(p)


def test_appender_appends_and_consistent_prefix_truncates(tmp_path):
    ap = A.Appender(tmp_path / A.TRACE)
    ap.append([{"sample_id": "a"}, {"sample_id": "b"}])
    ap.close()
    ap = A.Appender(tmp_path / A.GT_VS_PRED)
    ap.append([{"sample_id": "a"}, {"sample_id": "b"}])
    ap.close()
    # a third record whose trace never made it, then a torn line
    with open(tmp_path / A.GT_VS_PRED, "ab") as f:
        f.write(b'{"sample_id": "c"}\n{"sample_')
    recs, traces = consistent_prefix(tmp_path)
    assert [r["sample_id"] for r in recs] == ["a", "b"]
    assert (tmp_path / A.GT_VS_PRED).read_bytes() == b'{"sample_id":"a"}\n{"sample_id":"b"}\n'
    assert len(traces) == 2


def test_write_json_is_atomic_and_versioned(tmp_path):
    A.write_json(tmp_path / "s.json", {"x": 1})
    assert A.read_json(tmp_path / "s.json") == {"schema_version": A.SCHEMA_VERSION, "x": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_lock_refuses_live_pid_and_takes_over_stale(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / A.LOCK).write_text(str(holder.pid))
        with pytest.raises(ResumeError, match=str(holder.pid)), run_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead now: its lock is stale and is taken over
    with run_lock(tmp_path):
        assert (tmp_path / A.LOCK).read_text() == str(os.getpid())
    assert not (tmp_path / A.LOCK).exists()


def test_check_resume_names_the_differing_fields(tmp_path):
    A.write_json(
        tmp_path / A.RUN_JSON,
        {"identity_hash": "h1", "identity": {"seed": 0, "decode": {"temperature": 0.0}}},
    )
    assert check_resume(tmp_path, {}, "h1") is True
    # nothing generated yet (a start refused before its first batch): another identity starts
    assert check_resume(tmp_path, {"seed": 0, "decode": {"temperature": 0.7}}, "h2") is False
    (tmp_path / A.GT_VS_PRED).write_text('{"sample_id": "0"}\n')
    with pytest.raises(ResumeError, match=r"decode.temperature: 0.0 -> 0.7"):
        check_resume(tmp_path, {"seed": 0, "decode": {"temperature": 0.7}}, "h2")


def _take(run_dir: str, barrier, results) -> None:
    barrier.wait()
    try:
        with run_lock(Path(run_dir)):
            results.put(("won", os.getpid()))
            time.sleep(1.5)  # hold it while the others try
    except ResumeError as e:
        results.put(("refused", str(e)))


def test_simultaneous_takeover_of_a_stale_lock_has_one_winner(tmp_path):
    """Eight processes race for a lock left by a dead process: exactly one may win (a pid check
    alone lets a late taker delete the winner's fresh lock and win too)."""
    import multiprocessing as mp

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / A.LOCK).write_text(str(dead.pid))
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_take, args=(str(tmp_path), barrier, results)) for _ in range(8)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    won = [o for o in outcomes if o[0] == "won"]
    assert len(won) == 1, outcomes
    assert all("is in use by" in o[1] for o in outcomes if o[0] == "refused")
    assert not (tmp_path / A.LOCK).exists()
