"""`coordbench suite` on the embedded model: a 2 x 2 suite (the model and a byte-identical copy
x two presets) is killed with SIGKILL, resumed, and every cell's gt_vs_pred.jsonl equals a
stand-alone `coordbench run` with the same options, byte for byte."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA

pytestmark = pytest.mark.skipif(
    not (EMBEDDED_CKPT / "model.safetensors").exists(), reason="embedded model missing"
)
OPTS = {"limit": 4, "temperature": 0.1, "top_p": 0.9, "seed": 42, "batch_size": 1}


def _env(tmp_path):
    root = Path(__file__).resolve().parents[1]
    return {
        **os.environ,
        "PYTHONPATH": str(root),
        "COORDBENCH_BENCHMARK_LOG": str(tmp_path / "log.jsonl"),
    }


def _suite(tmp_path) -> Path:
    copy = tmp_path / "shapes-copy"
    shutil.copytree(EMBEDDED_CKPT, copy)
    defaults = "\n".join(f"{k} = {v}" for k, v in OPTS.items())
    path = tmp_path / "s.toml"
    path.write_text(
        f'name = "s"\n[defaults]\ndata = "embedded"\n{defaults}\n'
        '[[checkpoints]]\nname = "A"\nckpt = "embedded"\n'
        '[[checkpoints]]\nname = "A2"\nckpt = "shapes-copy"\n'
        '[matrix]\npreset = ["768", "1024"]\n'
    )
    return path


def _cmd(*args):
    return [sys.executable, "-m", "coordbench", *args]


@pytest.mark.slow
def test_suite_resumes_after_kill_and_equals_standalone_runs(tmp_path):
    env = _env(tmp_path)
    path, out = _suite(tmp_path), tmp_path / "suite"
    proc = subprocess.Popen(
        _cmd("suite", str(path), "--out", str(out), "--n-boot", "50"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    victim = out / "A__preset-1024" / "gt_vs_pred.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # kill inside the second cell
        if victim.exists() and victim.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "A__preset-768" / "summary.json").is_file()
    assert not (out / "A__preset-1024" / "summary.json").exists()
    again = subprocess.run(
        _cmd("suite", str(path), "--out", str(out), "--n-boot", "50"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "A__preset-768: already complete (4 samples)" in again.stdout
    assert "resuming at" in again.stderr  # the killed cell resumed batch by batch
    report = (out / "report.md").read_text()
    assert "## preset 768" in report and "## preset 1024" in report
    assert "### A: Delta (preset 1024 − 768)" in report and "### A2: Delta" in report
    assert "checkpoints A and A2 have equal weights" in report
    # stand-alone runs with the same options write the same records, byte for byte
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in OPTS.items()]
    for cell, ckpt, preset in [("A__preset-1024", None, "1024"), ("A2__preset-768", "x", "768")]:
        ck = ["--ckpt", str(tmp_path / "shapes-copy")] if ckpt else []
        data = ["--data", str(EMBEDDED_DATA)]
        run = subprocess.run(
            _cmd(
                "run",
                *ck,
                *data,
                "--preset",
                preset,
                *flags,
                "--out",
                str(tmp_path / "solo"),
                "--name",
                cell,
                "--no-progress",
            ),  # fmt: skip
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        for f in ("gt_vs_pred.jsonl", "pred_token_trace.jsonl", "eval/metrics.json"):
            assert (tmp_path / "solo" / cell / f).read_bytes() == (out / cell / f).read_bytes(), f
        solo = (tmp_path / "solo" / cell / "run.json").read_text()
        assert solo.split('"identity_hash": ')[1][:66] in (out / cell / "run.json").read_text()
