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


def git_sha() -> str | None:
    """The sha of the coordbench checkout (not of the cwd), if it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)  # fmt: skip
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
        },  # fmt: skip
        "cuda": cuda,
    }
