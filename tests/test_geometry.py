"""coordbench.geometry: hand-computed IoU, pycocotools parity, tokens and the norm1000 corners."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from coordbench.geometry import (
    COORD_MAX,
    box_norm1000_to_px,
    box_px_to_norm1000,
    coord_token,
    iou_matrix,
    iou_pairs_xywh,
    is_coord_token,
    norm1000_to_px,
    parse_coord_token,
    rel1000_to_px_float,
    round_clamp_px,
)

# --------------------------------------------------------------------------- IoU by hand

BASE = [0, 0, 10, 10]


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ([20, 20, 30, 30], 0.0),  # disjoint
        ([10, 0, 20, 10], 0.0),  # touching edges: shared side, zero-area overlap
        ([10, 10, 20, 20], 0.0),  # touching corners
        ([2, 2, 6, 7], 20 / 100),  # contained: inter = other's area, union = BASE's
        ([0, 0, 10, 10], 1.0),  # identical
        ([5, 0, 15, 10], 50 / 150),  # half overlap
        ([5, 5, 15, 15], 25 / 175),  # quarter overlap
        ([3, 3, 3, 8], 0.0),  # degenerate: zero width inside BASE
        ([4, 4, 4, 4], 0.0),  # degenerate: a point
        ([10, 10, 0, 0], 0.0),  # reversed corners count as empty
    ],
)
def test_iou_by_hand(other, expected):
    assert iou_matrix([BASE], [other])[0, 0] == expected
    assert iou_matrix([other], [BASE])[0, 0] == expected  # symmetric


def test_iou_matrix_shape_and_empty_sides():
    a = [[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 120]]
    b = [[0, 0, 10, 10], [0, 0, 5, 10]]
    m = iou_matrix(a, b)
    assert m.shape == (3, 2) and m.dtype == np.float64
    assert m.tolist() == [[1.0, 0.5], [50 / 150, 0.0], [0.0, 0.0]]
    assert iou_matrix([], b).shape == (0, 2)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (3, 0)


def test_degenerate_box_with_itself_is_zero():
    assert iou_matrix([[3, 3, 3, 8]], [[3, 3, 3, 8]])[0, 0] == 0.0


def test_iou_pairs_xywh_by_hand():
    d = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    g = np.array([[5, 0, 10, 10], [10, 0, 5, 5], [2, 2, 4, 5]], float)
    assert iou_pairs_xywh(d, g).tolist() == [50 / 150, 0.0, 20 / 100]


# --------------------------------------------------------------------------- pycocotools parity


def _random_xywh(rng: np.random.Generator, n: int, integer: bool) -> np.ndarray:
    boxes = np.concatenate([rng.uniform(0, 200, (n, 2)), rng.uniform(0.5, 120, (n, 2))], axis=1)
    return np.maximum(np.round(boxes), [0, 0, 1, 1]) if integer else boxes


@pytest.mark.parametrize("integer", [True, False])
def test_iou_matrix_matches_pycocotools(integer):
    rng = np.random.default_rng(7 + integer)
    d, g = _random_xywh(rng, 60, integer), _random_xywh(rng, 45, integer)
    want = np.asarray(mask_utils.iou(d.tolist(), g.tolist(), [0] * len(g)), dtype=np.float64)
    assert (want > 0).sum() > 50  # the sample has real overlaps, not only zeros
    xyxy = lambda b: np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)  # noqa: E731
    got = iou_matrix(xyxy(d), xyxy(g))
    if integer:  # (x + w) - x == w exactly: the same floats as bbIou
        assert np.array_equal(got, want)
    else:  # float boxes: the xyxy areas may differ from w * h in the last bit
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_iou_pairs_xywh_is_bit_identical_to_pycocotools():
    rng = np.random.default_rng(11)
    d, g = _random_xywh(rng, 80, False), _random_xywh(rng, 80, False)
    g[::3] = d[::3] + rng.uniform(-5, 5, (len(g[::3]), 4))  # many overlapping pairs
    want = np.asarray(mask_utils.iou(d.tolist(), g.tolist(), [0] * len(g)), dtype=np.float64)
    rows = np.repeat(np.arange(len(d)), len(g))
    cols = np.tile(np.arange(len(g)), len(d))
    got = iou_pairs_xywh(d[rows], g[cols]).reshape(len(d), len(g))
    assert (want > 0).sum() > 20
    assert np.array_equal(got, want)


# --------------------------------------------------------------------------- tokens


def test_token_round_trip():
    for k in (0, 1, 42, 500, 998, COORD_MAX):
        tok = coord_token(k)
        assert tok == f"<|coord_{k}|>" and is_coord_token(tok) and parse_coord_token(tok) == k


def test_token_edges():
    assert parse_coord_token("<|coord_0042|>") == 42  # up to 4 digits, as upstream's regex
    assert is_coord_token("<|coord_1000|>") and parse_coord_token("<|coord_1000|>") is None
    assert parse_coord_token("<|coord_7|>\n") == 7  # `$` matches before a final newline (upstream)
    for bad in (
        "<|coord_|>",
        "<|coord_12345|>",
        "coord_5",
        " <|coord_5|>",
        "<|coord_-1|>",
        5,
        None,
    ):
        assert parse_coord_token(bad) is None and not is_coord_token(bad)
    for bad in (-1, 1000, 3.0, True, "5"):
        with pytest.raises(ValueError):
            coord_token(bad)


# --------------------------------------------------------------------------- norm1000 <-> pixel


@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (2, 3), (256, 256), (1024, 768), (999, 1000), (1920, 1080)]
)
def test_norm1000_corners(width, height):
    assert box_norm1000_to_px([0, 0, COORD_MAX, COORD_MAX], width, height) == [
        0,
        0,
        width - 1,
        height - 1,
    ]
    assert norm1000_to_px(0, width) == 0 and norm1000_to_px(COORD_MAX, width) == width - 1
    assert norm1000_to_px(-50, width) == 0 and norm1000_to_px(5000, height) == height - 1  # clamped
    full = box_px_to_norm1000([0, 0, width - 1, height - 1], width, height)
    assert full[0] == 0 and full[1] == 0
    assert full[2] == (COORD_MAX if width > 1 else 1)  # a 1-px side still gets one bin
    assert full[3] == (COORD_MAX if height > 1 else 1)


def test_norm1000_round_trip_is_exact_on_the_corners():
    for w, h in ((256, 256), (1024, 768), (640, 427)):
        box = [0, 0, w - 1, h - 1]
        assert box_norm1000_to_px(box_px_to_norm1000(box, w, h), w, h) == box


def test_rounding_is_half_to_even():
    assert round_clamp_px(2.5, 10) == 2 and round_clamp_px(3.5, 10) == 4
    assert round_clamp_px(-0.4, 10) == 0 and round_clamp_px(9.6, 10) == 9
    assert norm1000_to_px(100.5, 1000) == 100  # the bin itself is rounded first: round(100.5) = 100
    assert rel1000_to_px_float(500, 640) == 320.0 and rel1000_to_px_float(1000, 640) == 640.0
