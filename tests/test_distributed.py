"""Data parallel under torchrun (gloo on CPU) equals a single-process run; world size is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Token ids, texts and parses must be identical; log-probabilities carry float noise from the
# different batch shapes each rank runs (batched matmuls), so they are compared to 1e-4.
IDENTICAL = ["gt_vs_pred.jsonl", "eval/per_image.json"]


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from coordbench.data.shapes import write_split
    from coordbench.embedded.tiny_families import save_tiny

    root = tmp_path_factory.mktemp("dp")
    ckpt = root / "ckpt"
    save_tiny("qwen2_5_vl", ckpt)
    data = write_split(root / "data", "val", n=6)
    return root, ckpt, data / "val.coord.jsonl"


def _args(ckpt, data, out, name, extra=()):
    return [
        "run",
        "--ckpt",
        str(ckpt),
        "--data",
        str(data),
        "--preset",
        "64",
        "--prompt",
        "default_desc_first",
        "--max-new-tokens",
        "16",
        "--batch-size",
        "2",
        "--temperature",
        "0.7",
        "--top-p",
        "0.9",
        "--out",
        str(out),
        "--name",
        name,
        "--no-progress",
        *extra,
    ]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", COORDBENCH_BENCHMARK_LOG=os.devnull)
    env.pop("WORLD_SIZE", None)
    return env


def _launch(prefix: list[str], ckpt, data, out, name) -> None:
    """`coordbench run` under a launcher (`prefix`: python, torchrun or accelerate argv)."""
    p = subprocess.run(
        [*prefix, "-m", "coordbench", *_args(ckpt, data, out, name)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_two_ranks_equals_single_process(tiny_setup):
    root, ckpt, data = tiny_setup
    out = root / "runs"
    _launch([sys.executable], ckpt, data, out, "single")
    torchrun = Path(sys.executable).with_name("torchrun")
    _launch(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533"], ckpt, data, out, "dp"
    )
    assert (out / "dp" / "shards").is_dir()
    for f in IDENTICAL:
        assert (out / "single" / f).read_bytes() == (out / "dp" / f).read_bytes(), f
    import json

    def rows(run):
        return [
            json.loads(x) for x in (out / run / "pred_token_trace.jsonl").read_text().splitlines()
        ]

    for a, b in zip(rows("single"), rows("dp"), strict=True):
        assert a["token_ids"] == b["token_ids"] and a["line_idx"] == b["line_idx"]
        assert (
            max(
                abs(x - y)
                for x, y in zip(a["token_logprobs_raw"], b["token_logprobs_raw"], strict=True)
            )
            < 1e-4
        )
    ma = json.loads((out / "single" / "eval/metrics.json").read_text())["metrics"]
    mb = json.loads((out / "dp" / "eval/metrics.json").read_text())["metrics"]
    assert ma.keys() == mb.keys()
    assert all(abs(ma[k] - mb[k]) < 1e-3 for k in ma)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_ranks_equals_single_process(tiny_setup):
    """`accelerate launch --multi_gpu` is how accelerate starts several CPU ranks (its `--cpu`
    flag starts only one process); the ranks must split the work, not each do all of it."""
    root, ckpt, data = tiny_setup
    out = root / "runs_acc"
    _launch([sys.executable], ckpt, data, out, "single")
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    _launch(
        [
            accelerate,
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "29534",
        ],
        ckpt,
        data,
        out,
        "acc",
    )
    import json

    run = json.loads((out / "acc" / "run.json").read_text())
    assert run["provenance"]["world_size"] == 2
    assert len(list((out / "acc" / "shards").iterdir())) == 2
    for f in IDENTICAL:
        assert (out / "single" / f).read_bytes() == (out / "acc" / f).read_bytes(), f
