"""coco_preds.json from columns is byte for byte orjson.dumps of the dict list (the oracle)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from coordbench.metrics import coco_json
from coordbench.metrics.coco_match import CocoDets, CocoResults

ODD_FLOATS = [
    0.0,
    -0.0,
    1.0,
    2.0,
    0.1 + 0.2,
    1e-7,
    1e16,
    1e17,
    123456789012345.6,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    -1.5,
    0.30000000000000004,
    1 / 3,
    2.5e-5,
    1e15,
    9007199254740993.0,
    float("nan"),
    float("inf"),
    -float("inf"),
    1e21,
    1e22,
    0.001,
    1e-4,
    123.0,
    4.35,
]
HUGE_IDS = [0, 1, 9, 10, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, -1, -(2**63)]


def _oracle(d: CocoDets) -> bytes:
    return orjson.dumps(d.dicts())


def _dets(n: int, rng: np.random.Generator, *, int_box: bool) -> CocoDets:
    floats = np.array(ODD_FLOATS)
    box = rng.choice(floats, (n, 4))
    if int_box:
        box = rng.choice(np.array(HUGE_IDS, np.int64), (n, 4))
    score = np.where(rng.random(n) < 0.5, rng.choice(floats, n), rng.random(n))
    score[: min(n, 3)] = [0.0, 1.0, 0.5][: min(n, 3)]
    return CocoDets(
        rng.choice(np.array(HUGE_IDS, np.int64), n),
        rng.choice(np.array(HUGE_IDS, np.int64), n),
        box,
        score,
    )


@pytest.mark.parametrize("int_box", [True, False])
@pytest.mark.parametrize("n", [1, 2, 5, 997])
def test_adversarial_numbers_are_byte_identical(n, int_box):
    d = _dets(n, np.random.default_rng(n), int_box=int_box)
    assert coco_json.columns_supported(d.image_id, d.category_id, d.bbox, d.score)
    body = coco_json.results_body(d.image_id, d.category_id, d.bbox, d.score)
    assert b"[" + body + b"]" == _oracle(d)


def test_every_odd_float_in_every_field_position():
    f = np.array(ODD_FLOATS)
    n = len(f)
    d = CocoDets(np.arange(n), np.arange(n)[::-1].copy(), np.stack([f, f[::-1], -f, f], 1), f)
    assert b"".join(CocoResults(d).json_chunks()) == _oracle(d)
    assert b'"score":null' in _oracle(d)  # NaN/inf: null, as orjson writes the dicts


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunks_join_to_the_whole_dump(monkeypatch, chunk):
    monkeypatch.setattr(CocoResults, "JSON_CHUNK", chunk)
    d = _dets(130, np.random.default_rng(7), int_box=True)
    assert b"".join(CocoResults(d).json_chunks()) == _oracle(d)
    assert b"".join(CocoResults(d.rows(0, 0)).json_chunks()) == b"[]"


def test_strided_and_small_int_columns():
    rng = np.random.default_rng(3)
    wide = rng.integers(0, 10**6, (50, 8))
    d = CocoDets(
        wide[:, 0], wide[:, 1].astype(np.int32), wide[:, 2:6].astype(np.uint16), rng.random(50)
    )
    assert not d.image_id.flags.c_contiguous
    assert b"".join(CocoResults(d).json_chunks()) == _oracle(d)


def test_columns_orjson_would_format_differently_take_the_dict_path():
    rng = np.random.default_rng(5)
    f32 = CocoDets(np.arange(4), np.arange(4), rng.random((4, 4)).astype(np.float32), rng.random(4))
    assert not coco_json.columns_supported(f32.image_id, f32.category_id, f32.bbox, f32.score)
    obj = CocoDets(np.array(["a", "b"], object), np.arange(2), np.ones((2, 4)), np.ones(2))
    assert not coco_json.columns_supported(obj.image_id, obj.category_id, obj.bbox, obj.score)
    for d in (f32, obj):
        assert b"".join(CocoResults(d).json_chunks()) == _oracle(d)
