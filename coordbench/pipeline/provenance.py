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
