"""Index arithmetic for ragged runs: every (owner, offset) pair of consecutive runs of given
lengths, whole or in bounded chunks. The vectorised matchers (COCO, F1, duplicates, bootstrap)
enumerate their candidate pairs this way instead of looping in Python."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

PAIR_CHUNK = 1 << 21  # elements per numpy batch: bounds memory for answers of 10^4 boxes


def ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, offset) of every element of consecutive runs of the given lengths."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


def ragged_chunks(
    counts: np.ndarray, chunk: int = PAIR_CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`ragged(counts)` in pieces of about `chunk` elements (whole runs, at least one each);
    owners are positions in `counts`."""
    cum = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        base = int(cum[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(cum, base + chunk, side="right")), lo + 1)
        owner, off = ragged(counts[lo:hi])
        yield owner + lo, off
        lo = hi
