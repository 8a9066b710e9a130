"""What the per-sample log-prob pass costs: whole `coordbench run` processes, with and without.

The pass (`coordbench/backends/hf_rescore.py`) re-scores each sample's tokens on their own after
its batch, so scores do not depend on batch size or shards (`--logprobs per-sample`). This
bench times the embedded default run (or any run, via the arguments after `--`) as a
subprocess, alternating `--logprobs per-sample` and `--logprobs batched` (the default) so that
load from other jobs hits both alike, and
prints each repeat, the medians, the pass's own seconds from run.json and the ratio last.

    .venv/bin/python bench/logprob_pass_cost.py [--repeats 3] [-- --temperature 0.7 --top-p 0.9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(out: Path, mode: str, extra: list[str]) -> tuple[float, float]:
    """(wall seconds of the whole process, the pass's seconds from run.json)."""
    env = {**os.environ, "COORDBENCH_BENCHMARK_LOG": str(out / "log.jsonl")}
    cmd = [sys.executable, "-m", "coordbench", "run", "--out", str(out), "--name", mode]
    cmd += ["--logprobs", mode]
    t0 = time.perf_counter()
    subprocess.run(
        [*cmd, "--overwrite", "--no-progress", *extra],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    head = json.loads((out / mode / "run.json").read_text())
    if head["config"]["logprobs"] != mode:
        raise SystemExit(f"run.json says logprobs={head['config']['logprobs']!r}, not {mode!r}")
    gen = head["provenance"]["sessions"][-1]["generation"]
    return wall, float(gen.get("rescore_seconds", 0.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="arguments for `coordbench run` (after --)")
    args = ap.parse_args()
    walls: dict[str, list[float]] = {"per-sample": [], "batched": []}
    passes: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for mode in walls:
                wall, pass_s = one_run(Path(tmp), mode, args.extra)
                walls[mode].append(wall)
                if mode == "per-sample":
                    passes.append(pass_s)
                load = os.getloadavg()[0]
                print(f"repeat {i + 1} {mode:10s} {wall:6.2f} s wall  (load {load:.2f})")
    on, off = statistics.median(walls["per-sample"]), statistics.median(walls["batched"])
    print(f"median per-sample {on:.2f} s, batched {off:.2f} s")
    print(f"the pass itself (run.json rescore_seconds): median {statistics.median(passes):.2f} s")
    print(f"ratio per-sample / batched: {on / off:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
