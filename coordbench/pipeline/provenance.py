"""Provenance: what ran where (never part of the identity hash)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def git_sha() -> str | None:
    """The sha of the coordbench checkout (not of the cwd), if it is a git checkout.

    None when installed: site-packages is no checkout, and a venv inside some other repository
    must not report that repository's sha, so git is asked only where `.git` sits beside the
    package (a file in a worktree, a folder in a clone).
    """
    root = CHECKOUT_ROOT
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def base_provenance() -> dict[str, Any]:
    cuda = None
    if "torch" in sys.modules:  # only report what is already imported: keep start-up light
        torch = sys.modules["torch"]
        cuda = torch.version.cuda if torch.cuda.is_available() else None
    return {
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: _version(p)
            for p in (
                "coordbench",
                "torch",
                "transformers",
                "accelerate",
                "faster-coco-eval",
                "pycocotools",
                "numpy",
            )
        },
        "cuda": cuda,
    }


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _session_totals(sessions: Any) -> tuple[float, float, float]:
    """(samples generated, generation seconds, wall seconds) summed over the invocations that
    generated something: a resume or a re-score that generates nothing adds no time."""
    gen = secs = wall = 0.0
    for s in sessions if isinstance(sessions, list) else []:
        g = s.get("generation") if isinstance(s, dict) else None
        if not isinstance(g, dict) or not _num(g.get("generated")):
            continue
        gen += _num(g.get("generated"))
        secs += _num(g.get("generate_seconds"))
        wall += _num(s.get("wall_seconds"))
    return gen, secs, wall


def run_timing(prov: dict[str, Any]) -> dict[str, Any]:
    """wall_seconds, generate_seconds, samples_generated and samples_per_s across every
    invocation (and every shard of a merged run).

    Throughput is samples generated / generation seconds, both summed over invocations, so a
    resume neither divides old samples by new time nor loses the earlier sessions' time. Shards
    run side by side: their wall time is the slowest shard's, plus the final scoring.
    """
    shards = [p for p in prov.get("shards") or [] if isinstance(p, dict)]
    parts = [_session_totals(p.get("sessions")) for p in shards] or [
        _session_totals(prov.get("sessions"))
    ]
    gen = sum(p[0] for p in parts)
    secs = sum(p[1] for p in parts)
    wall = max(p[2] for p in parts) + _num(prov.get("score_seconds"))
    return {
        "wall_seconds": round(wall, 3),
        "generate_seconds": round(secs, 3),
        "samples_generated": int(gen),
        "samples_per_s": round(gen / secs, 3) if secs > 0 else None,
    }
