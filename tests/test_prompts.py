"""Prompt strings and hashes against the upstream oracle (reference/oracle/prompts.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from coordbench.config.prompts import (
    COCO80_CLASSES,
    PromptPreset,
    build_messages,
    prompt_template_hash,
    render_target,
    system_prompt,
    user_prompt,
)
from coordbench.errors import ConfigError, DataError
from coordbench.types import SURFACES

ORACLE_PATH = Path(__file__).parent / "oracle" / "prompts.json"  # upstream's rendered prompts
ORACLE = json.loads(ORACLE_PATH.read_text(encoding="utf-8"))


def preset_of(key: str, **kw) -> PromptPreset:
    ordering, coord_mode, variant, field_order, bbox_format = key.split("|")
    return PromptPreset("t", ordering, coord_mode, variant, field_order, bbox_format, **kw)


def test_oracle_has_all_16_combinations():
    assert len(ORACLE) == 16


@pytest.mark.parametrize("key", sorted(ORACLE))
def test_prompts_equal_oracle_byte_for_byte(key):
    p = preset_of(key)
    assert system_prompt(p) == ORACLE[key]["system"]
    assert user_prompt(p) == ORACLE[key]["user"]
    assert prompt_template_hash(p) == ORACLE[key]["prompt_template_hash"]


def test_coco_benchmark_hash_is_the_one_recorded_upstream():
    # [UP-PROMPT-HASH]: the hash recorded in a real upstream run summary
    p = PromptPreset("t", "sorted", "coord_tokens", "coco_80", "desc_first", "xyxy")
    assert (
        prompt_template_hash(p)
        == "80bc24bfb8e85787924a3fc1d616cf211fbaa7d33ce357fa75b73b38f40ab5bc"
    )


def test_hash_uses_default_json_separators():
    """Compact separators would give another hash: the oracle pins `", "` / `": "`."""
    key = "sorted|coord_tokens|coco_80|desc_first|xyxy"
    p = preset_of(key)
    payload = {
        "ordering": "sorted",
        "coord_mode": "coord_tokens",
        "prompt_variant": "coco_80",
        "object_field_order": "desc_first",
        "bbox_format": "xyxy",
        "system_prompt": system_prompt(p),
        "user_prompt": user_prompt(p),
        "do_resize": False,
    }
    compact = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(compact.encode()).hexdigest() != ORACLE[key]["prompt_template_hash"]
    ascii_escaped = json.dumps(payload, sort_keys=True)  # the en dash would be escaped
    assert hashlib.sha256(ascii_escaped.encode()).hexdigest() != ORACLE[key]["prompt_template_hash"]


def test_hash_ignores_layout_but_messages_follow_it():
    text_first = preset_of("sorted|coord_tokens|default|desc_first|xyxy")
    image_first = preset_of("sorted|coord_tokens|default|desc_first|xyxy", layout="image_first")
    assert prompt_template_hash(text_first) == prompt_template_hash(image_first)
    img = object()
    m_text, m_image = build_messages(text_first, img), build_messages(image_first, img)
    sys_msg = {"role": "system", "content": [{"type": "text", "text": system_prompt(text_first)}]}
    user_text = {"type": "text", "text": user_prompt(text_first)}
    assert m_text == [
        sys_msg,
        {"role": "user", "content": [user_text, {"type": "image", "image": img}]},
    ]
    assert m_image == [
        sys_msg,
        {"role": "user", "content": [{"type": "image", "image": img}, user_text]},
    ]
    assert m_text[1]["content"][1]["image"] is img


def test_coco80_names_are_the_80_in_the_oracle_prompt():
    assert len(COCO80_CLASSES) == 80 == len(set(COCO80_CLASSES))
    assert (
        ", ".join(COCO80_CLASSES) in ORACLE["sorted|coord_tokens|coco_80|desc_first|xyxy"]["system"]
    )
    assert COCO80_CLASSES[0] == "person" and COCO80_CLASSES[-1] == "toothbrush"


@pytest.mark.parametrize("key", sorted(ORACLE))
def test_render_target_matches_the_prompt_example(key):
    """The user prompt's per-object example is exactly what render_target emits for it."""
    p = preset_of(key)
    desc = "black cat" if p.field_order == "desc_first" else "black cat near sofa"
    rendered = render_target([{"desc": desc, "bbox_2d": [110, 310, 410, 705]}], p)
    assert rendered.startswith('{"objects": [') and rendered.endswith("]}")
    assert f"Use the exact per-object format: {rendered[13:-2]}. " in ORACLE[key]["user"]


def test_render_target_coord_tokens_desc_first():
    objs = [
        {"desc": "person", "bbox_2d": [12, 34, 56, 78]},
        {"desc": "tv", "bbox_2d": ["<|coord_0|>", "<|coord_1|>", "<|coord_998|>", "<|coord_999|>"]},
    ]
    assert render_target(objs, PromptPreset("t")) == (
        '{"objects": [{"desc": "person", "bbox_2d": '
        "[<|coord_12|>, <|coord_34|>, <|coord_56|>, <|coord_78|>]}, "
        '{"desc": "tv", "bbox_2d": [<|coord_0|>, <|coord_1|>, <|coord_998|>, <|coord_999|>]}]}'
    )


def test_render_target_numeric_geometry_first_is_valid_json():
    p = PromptPreset("t", coord_mode="norm1000_text", field_order="geometry_first")
    objs = [
        {"desc": 'caf\u00e9 "x"', "bbox_2d": [1, 2, 3, 4], "category_id": 7}
    ]  # extra keys dropped
    text = render_target(objs, p)
    assert text == '{"objects": [{"bbox_2d": [1, 2, 3, 4], "desc": "caf\u00e9 \\"x\\""}]}'
    assert json.loads(text) == {"objects": [{"bbox_2d": [1, 2, 3, 4], "desc": 'caf\u00e9 "x"'}]}


def test_render_target_empty_image():
    assert render_target([], PromptPreset("t")) == '{"objects": []}'


@pytest.mark.parametrize(
    ("coord_mode", "box"),
    [
        ("coord_tokens", [0, 0, 1000, 5]),
        ("norm1000_text", [0, 0, 1000, 5]),
        ("rel1000", [0, 0, 1001, 5]),
        ("pixel", [-1, 0, 5, 5]),
        ("norm1000_text", [0, 0, 5.0, 5]),
        ("coord_tokens", ["<|coord_1000|>", 0, 1, 1]),
        ("norm1000_text", ["<|coord_1|>", 0, 1, 1]),
        ("coord_tokens", [True, 0, 1, 1]),
    ],
)
def test_render_target_rejects_values_off_the_surface(coord_mode, box):
    with pytest.raises(DataError):
        render_target([{"desc": "a", "bbox_2d": box}], PromptPreset("t", coord_mode=coord_mode))


def test_render_target_accepts_surface_maxima():
    assert "[0, 0, 1000, 1000]" in render_target(
        [{"desc": "a", "bbox_2d": [0, 0, 1000, 1000]}], PromptPreset("t", coord_mode="rel1000")
    )
    assert "[0, 0, 4000, 3000]" in render_target(
        [{"desc": "a", "bbox_2d": [0, 0, 4000, 3000]}], PromptPreset("t", coord_mode="pixel")
    )


@pytest.mark.parametrize(
    "obj", [{"desc": "a"}, {"bbox_2d": [1, 2, 3, 4]}, {"desc": "a", "bbox_2d": [1, 2, 3]}, "x"]
)
def test_render_target_rejects_malformed_objects(obj):
    with pytest.raises(DataError, match="object 0"):
        render_target([obj], PromptPreset("t"))


def test_surfaces_map_onto_records_surfaces():
    got = {
        m: PromptPreset("t", coord_mode=m).surface
        for m in ("coord_tokens", "norm1000_text", "pixel", "rel1000")
    }
    assert got == {
        "coord_tokens": "coord_tokens",
        "norm1000_text": "norm1000",
        "pixel": "pixel",
        "rel1000": "rel1000",
    }
    assert set(got.values()) == set(SURFACES)


@pytest.mark.parametrize("mode", ["pixel", "rel1000"])
def test_qwen_native_surfaces_follow_the_norm1000_text_pattern(mode):
    """No oracle exists for these; they differ from norm1000_text only in the coordinate wording."""
    ref = preset_of("sorted|norm1000_text|coco_80|desc_first|xyxy")
    p = PromptPreset("t", "sorted", mode, "coco_80", "desc_first")
    sys_ref, sys_new = (
        ORACLE["sorted|norm1000_text|coco_80|desc_first|xyxy"]["system"],
        system_prompt(p),
    )
    diff = [
        (a, b) for a, b in zip(sys_ref.splitlines(), sys_new.splitlines(), strict=True) if a != b
    ]
    assert len(diff) == 2 and all("oordinates" in b for _, b in diff)  # the two coordinate bullets
    assert "<|coord" not in user_prompt(p) and '"bbox_2d": [110, 310, 410, 705]' in user_prompt(p)
    assert user_prompt(p).endswith(
        ORACLE["sorted|norm1000_text|coco_80|desc_first|xyxy"]["user"][-1500:]
    )
    assert prompt_template_hash(p) != prompt_template_hash(ref)
    assert ("0\u20131000" in user_prompt(p)) == (mode == "rel1000")
    assert ("pixel coordinates" in user_prompt(p)) == (mode == "pixel")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"variant": "coco80"},
            "expected `variant` to be one of ('default', 'coco_80', ",
        ),
        (
            {"ordering": "shuffled"},
            "expected `ordering` to be one of ('sorted', 'random') but got 'shuffled'",
        ),
        (
            {"field_order": "desc"},
            "expected `field_order` to be one of ('desc_first', 'geometry_first')",
        ),
        (
            {"coord_mode": "norm1000"},
            "expected `coord_mode` to be one of ('coord_tokens', 'norm1000_text', ",
        ),
        (
            {"bbox_format": "cxcywh"},
            "expected `bbox_format` to be one of ('xyxy',) but got 'cxcywh'",
        ),
        ({"layout": "image_last"}, "expected `layout` to be one of ('text_first', 'image_first')"),
    ],
)
def test_unknown_values_are_config_errors(kw, message):
    with pytest.raises(ConfigError) as err:
        PromptPreset("t", **kw)
    assert str(err.value).startswith(message)
