"""`coordbench suite` vs the same cells as stand-alone `coordbench run` processes.

The issue's study on the embedded model: three checkpoints (the shipped model, a perturbed copy
"B" that answers differently, and a byte-identical copy under another name) x presets 768 and
1024, T 0.1, top-p 0.9, seed 42, `--limit N`. Both sides are whole processes, timed end to end
one after the other on the same machine: the suite (one process, each checkpoint loaded once,
then its report with `--n-boot` resamples) against six `coordbench run` processes (each
importing torch and loading its model). Both write their own run dirs; the bench checks that
every cell's gt_vs_pred.jsonl equals its stand-alone twin byte for byte, then prints the ratio
last: `suite_vs_standalone=X.XX`.

    .venv/bin/python bench/suite_speed.py [--limit 16] [--repeats 1] [--n-boot 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA  # noqa: E402

PRESETS = ("768", "1024")
OPTS = {"temperature": 0.1, "top_p": 0.9, "seed": 42}


def perturbed_copy(dst: Path, scale: float = 0.02, seed: int = 0) -> None:
    """A second model: the embedded weights plus seeded noise (scale x each tensor's std)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    shutil.copytree(EMBEDDED_CKPT, dst)
    rng = np.random.default_rng(seed)
    weights = load_file(str(EMBEDDED_CKPT / "model.safetensors"))
    out = {}
    for k, v in weights.items():
        if v.dtype.kind == "f" and v.size > 1:
            v = (
                v + rng.standard_normal(v.shape).astype(v.dtype) * (scale * float(v.std()))
            ).astype(v.dtype)
        out[k] = v
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})


def suite_file(work: Path, limit: int) -> Path:
    text = f"""name = "paper"
[defaults]
data = "{EMBEDDED_DATA}"
limit = {limit}
temperature = {OPTS["temperature"]}
top_p = {OPTS["top_p"]}
seed = {OPTS["seed"]}

[[checkpoints]]
name = "A"
ckpt = "embedded"

[[checkpoints]]
name = "B"
ckpt = "{work / "B"}"

[[checkpoints]]
name = "A-copy"
ckpt = "{work / "A-copy"}"

[matrix]
preset = {list(PRESETS)}
"""
    path = work / "paper.toml"
    path.write_text(text.replace("'", '"'))
    return path


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def standalone(work: Path, out: Path, limit: int, env: dict[str, str]) -> float:
    total = 0.0
    for name, ckpt in (("A", None), ("B", work / "B"), ("A-copy", work / "A-copy")):
        for preset in PRESETS:
            cmd = [sys.executable, "-m", "coordbench", "run", "--data", str(EMBEDDED_DATA)]
            cmd += ["--ckpt", str(ckpt)] if ckpt else []
            cmd += ["--preset", preset, "--limit", str(limit), "--no-progress"]
            cmd += ["--temperature", str(OPTS["temperature"]), "--top-p", str(OPTS["top_p"])]
            cmd += ["--seed", str(OPTS["seed"]), "--out", str(out)]
            cmd += ["--name", f"{name}__preset-{preset}"]
            total += timed(cmd, env)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--keep", type=Path, help="keep the suite and run dirs here")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cb-suite-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "B").exists():
        perturbed_copy(work / "B")
    if not (work / "A-copy").exists():
        shutil.copytree(EMBEDDED_CKPT, work / "A-copy")
    path = suite_file(work, args.limit)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COORDBENCH_BENCHMARK_LOG": str(work / "l")}
    ratios = []
    for r in range(args.repeats):
        for d in ("suite", "solo"):
            shutil.rmtree(work / f"{d}{r}", ignore_errors=True)
        cmd = [sys.executable, "-m", "coordbench", "suite", str(path), "--out"]
        s = timed([*cmd, str(work / f"suite{r}"), "--n-boot", str(args.n_boot)], env)
        t = standalone(work, work / f"solo{r}", args.limit, env)
        for cell in sorted(p.name for p in (work / f"solo{r}").iterdir()):
            a = (work / f"solo{r}" / cell / "gt_vs_pred.jsonl").read_bytes()
            b = (work / f"suite{r}" / cell / "gt_vs_pred.jsonl").read_bytes()
            assert a == b, f"{cell}: suite and stand-alone records differ"
        ratios.append(s / t)
        print(f"repeat {r}: suite {s:.1f} s, 6 stand-alone runs {t:.1f} s, ratio {s / t:.2f}")
    print(f"cells byte-identical: 6/6 per repeat; report: {work / 'suite0' / 'report.md'}")
    print(f"suite_vs_standalone={min(ratios):.2f}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
