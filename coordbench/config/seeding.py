"""Per-sample seeds: a sample's tokens depend on (run seed, sample id), never on batching."""

from __future__ import annotations

import hashlib


def sample_seed(run_seed: int, sample_id: str) -> int:
    """A 63-bit seed from the run seed and the sample id (stable across processes and versions)."""
    digest = hashlib.sha256(f"coordbench:{run_seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
