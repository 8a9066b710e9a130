"""Coordinate frames against upstream's own outputs: the data-pipeline and parse oracles."""

from __future__ import annotations

import json

import pytest

from coordbench.data.coords import (
    objects_to_norm1000,
    objects_to_tokens,
    rescale_objects,
    sort_objects,
)
from coordbench.data.resize import smart_resize
from coordbench.geometry import (
    box_norm1000_to_px,
    box_px_to_norm1000,
    coord_token,
    is_coord_token,
    norm1000_to_px,
    parse_coord_token,
    scale_box_px,
)


def _rows(oracle_dir, name):
    return [
        json.loads(line) for line in (oracle_dir / name).read_text().splitlines() if line.strip()
    ]


def test_data_pipeline_oracle(oracle_dir):
    """raw COCO-style record -> size -> pixel record -> sorted norm1000 -> tokens, exactly."""
    rows = _rows(oracle_dir, "data_pipeline_oracle.jsonl")
    assert len(rows) == 4
    for row in rows:
        raw, budget = row["raw"], int(row["preset"].rsplit("_", 1)[1])
        size = smart_resize(raw["width"], raw["height"], max_pixels=32 * 32 * budget)
        assert list(size) == row["expected_resized_WxH"]
        pixel = {
            **raw,
            "width": size[0],
            "height": size[1],
            "objects": rescale_objects(raw["objects"], (raw["width"], raw["height"]), size),
        }
        norm_objs, dropped = objects_to_norm1000(pixel["objects"], *size)
        norm, coord = (
            {**pixel, "objects": norm_objs},
            {**pixel, "objects": objects_to_tokens(norm_objs)},
        )
        assert dropped == 0
        # compare the serialized text too: values, object order and key order
        for ours, key in (
            (pixel, "expected_pixel_record"),
            (norm, "expected_norm_record"),
            (coord, "expected_coord_record"),
        ):
            assert json.dumps(ours, ensure_ascii=False) == json.dumps(
                row[key], ensure_ascii=False
            ), key


def test_norm1000_to_pixel_matches_parse_oracle(oracle_dir):
    """Upstream's standardizer output for norm1000 values, incl. a reversed box, at 2 sizes."""
    checked = 0
    for row in _rows(oracle_dir, "parse_oracle.jsonl"):
        if row["mode"] != "coord" and row["pred_coord_mode"] != "norm1000":
            continue
        objs = [
            o for o in (row["expected_raw_output_json"] or {}).get("objects", []) if "bbox_2d" in o
        ]
        preds = [p for p in row["expected_pred"] if p["type"] == "bbox_2d"]
        if len(objs) != len(preds):  # degenerate boxes are dropped there; nothing to pair
            continue
        for o, p in zip(objs, preds, strict=True):
            assert box_norm1000_to_px(o["bbox_2d"], row["width"], row["height"]) == p["points"], (
                row["case"]
            )
            checked += 1
    assert checked >= 20


def test_hand_computed_round_trips():
    # 1024x768: 100/999*1023 = 102.4 -> 102; 200/999*767 = 153.55 -> 154 ([UP-DENORM] example)
    assert box_norm1000_to_px([100, 200, 300, 400], 1024, 768) == [102, 154, 307, 307]
    assert norm1000_to_px(999, 1024) == 1023 and norm1000_to_px(0, 1024) == 0
    # pixel -> norm: x1 = floor(10/1023*999) = floor(9.765) = 9,
    # x2 = ceil(20/1023*999) = ceil(19.53) = 20
    assert box_px_to_norm1000([10, 10, 20, 20], 1024, 768) == [9, 13, 20, 27]
    # the last pixel column/row is bin 999 ((W-1) denominators, not W)
    assert box_px_to_norm1000([0, 0, 1023, 767], 1024, 768) == [0, 0, 999, 999]


def test_norm1000_min_extent_fix():
    # W = H = 1000 makes the scale exactly 999/999 = 1, so pixels are bins
    # a zero-width box gets one bin; at the right edge it becomes (998, 999)
    assert box_px_to_norm1000([5, 5, 5, 9], 1000, 1000) == [5, 5, 6, 9]
    assert box_px_to_norm1000([999, 0, 999, 10], 1000, 1000) == [998, 0, 999, 10]
    assert box_px_to_norm1000([1200, 0, 1300, 10], 1000, 1000)[:3:2] == [998, 999]  # clamped first


def test_scale_box_rounds_clamps_and_widens():
    # 0.2 px wide at x=10.1 scaled by 1.65 collapses to [17, 17] and is widened to the right
    assert scale_box_px([10.1, 20.0, 10.3, 50.0], (640, 427), (1056, 704))[::2] == [17, 18]
    # a collapsed box on the right border is widened to the left instead
    assert scale_box_px([639.8, 0, 640.0, 10], (640, 480), (1024, 768))[::2] == [1022, 1023]
    # flipped input is re-ordered
    assert scale_box_px([100, 100, 50, 50], (100, 100), (200, 200)) == [100, 100, 199, 199]
    # Python's half-to-even rounding: 2.5 -> 2, 3.5 -> 4
    assert scale_box_px([1.25, 1.75, 3, 3], (10, 10), (20, 20))[:2] == [2, 4]


def test_rescale_keeps_geometry_when_size_is_unchanged():
    objs = [{"bbox_2d": [0.5, 1.5, 640.0, 480.0], "desc": "a"}]
    assert rescale_objects(objs, (640, 480), (640, 480)) == objs  # upstream's idempotent path


def test_tokens():
    assert coord_token(0) == "<|coord_0|>" and coord_token(999) == "<|coord_999|>"
    assert parse_coord_token("<|coord_42|>") == 42 and parse_coord_token("<|coord_0042|>") == 42
    assert parse_coord_token("<|coord_1000|>") is None and is_coord_token("<|coord_1000|>")
    for bad in ("<coord_1>", "<|coord_-1|>", " <|coord_1|>", 5, None):
        assert parse_coord_token(bad) is None
    for bad in (1000, -1, True, 1.0):
        with pytest.raises(ValueError):
            coord_token(bad)


def test_sort_is_stable_by_y_then_x():
    objs = [
        {"bbox_2d": [5, 10, 6, 11], "desc": "b"},
        {"bbox_2d": [1, 10, 2, 11], "desc": "a"},
        {"bbox_2d": [5, 10, 9, 19], "desc": "c"},
        {"bbox_2d": [0, 0, 1, 1], "desc": "top"},
    ]
    assert [o["desc"] for o in sort_objects(objs)] == ["top", "a", "b", "c"]
