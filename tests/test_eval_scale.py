"""Issue 26's fast paths against the operations they replace (hand cases and numpy's own)."""

from __future__ import annotations

import numpy as np
import pytest

from coordbench.metrics.coco_accumulate import by_group_then_score


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 50_000])
def test_two_stable_sorts_equal_lexsort(n: int) -> None:
    rng = np.random.default_rng(n)
    group = rng.integers(0, 80, n)
    for score in (rng.random(n), rng.choice([0.0, -0.0, 0.25, 0.5, 1.0], n)):  # ties, -0.0
        assert np.array_equal(by_group_then_score(group, score), np.lexsort((-score, group)))


def test_groups_past_16_bits_take_lexsort() -> None:
    rng = np.random.default_rng(3)
    group, score = rng.integers(0, 70_000, 5000), rng.random(5000)
    assert np.array_equal(by_group_then_score(group, score), np.lexsort((-score, group)))
    group[0] = -1
    assert np.array_equal(by_group_then_score(group, score), np.lexsort((-score, group)))


def test_ties_keep_input_order() -> None:
    group = np.array([1, 0, 1, 0, 1])
    score = np.array([0.5, 0.5, 0.9, 0.5, 0.5])
    assert by_group_then_score(group, score).tolist() == [1, 3, 2, 0, 4]
