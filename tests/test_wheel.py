"""A built wheel, installed into a fresh venv, runs the embedded default from an unrelated
directory.

How, and why this way (measured on a 2-core CI machine):

- The wheel is built with this venv's pip (`pip wheel --no-deps -w DIST .`) from a copy of the
  build inputs (pyproject.toml, README.md, coordbench/, configs/, public_data/shapes/), so the
  build never writes build/ or *.egg-info into the checkout and stale files from an earlier build
  cannot leak in; the copy keeps `coordbench/resources/*` as symlinks, as in the repo. ~5 s.
- The venv is fresh (`python -m venv`, no `--system-site-packages`): it must prove that the wheel
  declares every dependency and that nothing is read from the checkout. As in the Makefile, torch
  goes in first, pinned to the CPU wheel (`torch==2.13.0`, ~40 s from the local wheel); then the
  wheel with its dependencies from the package index (~70 s). A venv sharing this venv's
  site-packages would be faster but would hide a missing dependency, so it is not used.
- `coordbench run --limit 4` then runs from a temporary working directory without PYTHONPATH
  (~35 s), and the imported coordbench must be the one in the new venv's site-packages.

The whole test took 3.7 min on a 2-core machine loaded by other jobs (about 2.5 min unloaded),
under the ~5 min this slow test may add to CI.

Needs network access to the package index (CI has it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["pyproject.toml", "README.md", "coordbench", "configs", "public_data/shapes"]
TORCH = "torch==2.13.0"  # the CPU wheel, as in the Makefile
RUN_FILES = ["run.json", "summary.json", "eval/metrics.json", "report.html"]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """This process's environment without what would make the new venv see the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "COORDBENCH_CONFIGS"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _check(cmd: list[str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _copy_build_inputs(dst: Path) -> None:
    for rel in BUILD_INPUTS:
        src = REPO / rel
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
            shutil.copytree(src, dst / rel, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dst / rel)


def _build_wheel(tmp_path: Path) -> Path:
    src, dist = tmp_path / "src", tmp_path / "dist"
    _copy_build_inputs(src)
    _check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, "."], src, 600)
    (wheel,) = dist.glob("coordbench-*.whl")
    return wheel


def test_wheel_contents_and_installed_run(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [
        "resources/configs/rescale/64.toml",
        "resources/configs/prompt/default_desc_first.toml",
        "resources/shapes/val.coord.jsonl",
        "embedded/shapes-qwen25vl/model.safetensors",
        "embedded/shapes-qwen25vl/tokenizer.json",
        "py.typed",
    ]
    for rel in shipped:
        assert f"coordbench/{rel}" in names, rel
    assert sum(n.startswith("coordbench/resources/shapes/images/val/") for n in names) == 64
    assert not [n for n in names if "training_" in n or n.endswith(".pyc")]

    venv = tmp_path / "venv"
    _check([sys.executable, "-m", "venv", venv], tmp_path, 300)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _check([*pip, TORCH], tmp_path, 1200)
    _check([*pip, wheel], tmp_path, 1200)

    work = tmp_path / "elsewhere"  # an unrelated working directory: no configs/, no public_data/
    work.mkdir()
    python = venv / "bin" / "python"
    site = _check(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work, 60
    )
    site = Path(site.strip()).resolve()
    where = _check([python, "-c", "import coordbench; print(coordbench.__file__)"], work, 60)
    assert Path(where.strip()).resolve().is_relative_to(site), where

    out = work / "runs"
    cmd = [venv / "bin" / "coordbench", "run", "--limit", "4", "--out", out, "--no-progress"]
    _check(cmd, work, 900)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    for rel in RUN_FILES:
        assert (run_dir / rel).is_file(), rel
    head = json.loads((run_dir / "run.json").read_text())
    assert Path(head["config"]["data"]).resolve().is_relative_to(site)
    assert head["provenance"]["git_sha"] is None  # no checkout to ask
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["bbox_AP"] >= 0
