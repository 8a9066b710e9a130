"""The vectorised calibration statistics give the very floats of their definitions (bit for bit:
the metrics.json bytes must not change), on ties, -0.0, scores outside [0, 1] and odd sizes."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from coordbench.metrics import calibration as C


def _bins_by_mask(scores, correct, n_bins):
    """The definition: one mask per equal-width bin, in input order."""
    idx = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    out = []
    for k in range(n_bins):
        m = idx == k
        n = int(m.sum())
        out.append(
            {
                "lo": k / n_bins,
                "hi": (k + 1) / n_bins,
                "count": n,
                "mean_score": float(scores[m].mean()) if n else None,
                "tp_rate": float(correct[m].mean()) if n else None,
            }
        )
    return out


def _precision_by_search(scores, correct):
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    tp = np.cumsum(correct[order])
    last = np.searchsorted(-s, -s, side="right") - 1
    out = np.empty(len(scores))
    out[order] = tp[last] / (last + 1)
    return out


def _cases():
    rng = np.random.default_rng(11)
    for n in (0, 1, 2, 7, 1000, 30_011):
        yield rng.random(n), rng.random(n) < 0.4
        yield rng.integers(0, 20, n) / 19.0, rng.random(n) < 0.5  # heavy ties, 0.0 and 1.0
        odd = rng.choice(np.array([-0.0, 0.0, 1.0, 0.1, 0.1 + 0.2, 1e-7, -0.5, 1.5, 0.95]), n)
        yield odd, rng.random(n) < 0.5


@pytest.mark.parametrize("k", range(18))
def test_bins_and_mapped_precision_are_bit_identical_to_the_definitions(k):
    scores, correct = list(_cases())[k]
    for n_bins in (1, 10, 15):
        got = C.reliability_bins(scores, correct, n_bins)
        assert orjson.dumps(got) == orjson.dumps(_bins_by_mask(scores, correct, n_bins))
    got = C.precision_at_score(scores, correct, np.argsort(-scores, kind="quicksort"))
    assert got.tobytes() == _precision_by_search(scores, correct).tobytes()


@pytest.mark.parametrize("k", range(18))
def test_quicksort_gives_the_stable_sorts_statistics(k, monkeypatch):
    scores, correct = list(_cases())[k]
    gt = {"images": [], "annotations": [], "categories": []}
    monkeypatch.setattr(C, "tp_flags", lambda *a: (scores, correct))
    fast = orjson.dumps(C.calibration(gt, []))
    monkeypatch.setattr(C, "_sort_kind", lambda s: "stable")
    assert fast == orjson.dumps(C.calibration(gt, []))


def test_bool_ranks_are_rankdatas():
    c = np.random.default_rng(2).random(999) < 0.3
    assert C._bool_ranks(c).tobytes() == C.rankdata(c.astype(float)).tobytes()
