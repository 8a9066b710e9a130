"""Property tests: parse_output never raises, and what it returns is always consistent."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordbench.parse.answer import parse_answer
from coordbench.parse.output import CANONICAL, parse_output
from coordbench.types import SURFACES, ParseStatus

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CANONICAL_CODES = set(CANONICAL.values()) | {"empty_pred"}
# structural characters and tokens that steer the parser into its less-travelled branches
PIECES = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "\\",
    ",",
    ":",
    " ",
    "\n",
    "<|",
    "|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|coord_5|>",
    "<|coord_999|>",
    "<|coord_1000|>",
    '"objects"',
    '"desc"',
    '"bbox_2d"',
    '"poly"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e308",
    "-1e308",
    "1e400",
    "-7",
    "0",
    "999",
    "1000",
    "12.5",
    '"\\ud800"',
    "\ud800",
    "é",
    "٣",
    "\x00",
    "null",
    "true",
    '{"objects": [',
    "]}",
]
SIZES = st.tuples(st.integers(1, 2000), st.integers(1, 2000))


def _check(text: str, surface: str, w: int, h: int, finished: bool | None = None) -> None:
    p = parse_output(text, surface=surface, width=w, height=h, finished=finished)
    for b in p.objects:
        assert 0 <= b.x0 < b.x1 <= w - 1 and 0 <= b.y0 < b.y1 <= h - 1, (b, w, h)
        assert b.label == b.label.strip()
    for obj in p.pred:
        assert obj["type"] in ("bbox_2d", "poly")
        xs, ys = obj["points"][0::2], obj["points"][1::2]
        assert all(type(v) is int for v in obj["points"])
        assert all(0 <= x <= w - 1 for x in xs) and all(0 <= y <= h - 1 for y in ys)
    assert len(p.objects) <= len(p.pred)
    assert set(p.errors) <= CANONICAL_CODES and len(p.errors) == len(p.error_entries)
    assert (not p.pred) == ("empty_pred" in p.errors)
    if finished is False:
        assert p.status is ParseStatus.TRUNCATED
    if p.status in (ParseStatus.MALFORMED, ParseStatus.EMPTY):
        assert not p.objects
    if p.status is ParseStatus.OK:
        assert p.objects and not p.issues and len(p.objects) == len(p.pred) and not p.errors
    if p.status is ParseStatus.MALFORMED:
        assert p.raw_output_json is None


@FUZZ
@given(
    st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    st.sampled_from(SURFACES),
    SIZES,
)
def test_arbitrary_text(text: str, surface: str, size: tuple[int, int]) -> None:
    _check(text, surface, *size)


@FUZZ
@given(
    st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=40),
    st.sampled_from(SURFACES),
    SIZES,
)
def test_structural_soup(parts: list[str], surface: str, size: tuple[int, int]) -> None:
    _check("".join(parts), surface, *size)


VALUE = st.one_of(
    st.integers(-5, 1200).map(str),
    st.integers(0, 1005).map(lambda k: f"<|coord_{k}|>"),
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "1e308", "-1e308", "12.5", '"7"', '"<|coord_3|>"', "null"]
    ),
)
RECORD = st.tuples(
    st.sampled_from(["person", "", " dog ", "wine glass", "é\\u00e9", 'a\\"b', "{}"]),
    st.sampled_from(["bbox_2d", "poly", "bbox"]),
    st.lists(VALUE, min_size=0, max_size=8),
    st.booleans(),  # desc first?
)


def _render(records: list[tuple]) -> str:
    out = []
    for desc, key, values, desc_first in records:
        d, g = f'"desc": "{desc}"', f'"{key}": [' + ", ".join(values) + "]"
        out.append("{" + (f"{d}, {g}" if desc_first else f"{g}, {d}") + "}")
    return '{"objects": [' + ", ".join(out) + "]}"


@st.composite
def mutated_outputs(draw) -> str:
    text = _render(draw(st.lists(RECORD, max_size=6))) + draw(
        st.sampled_from(["", "<|im_end|>", " ok"])
    )
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, len(text)))
        op = draw(st.sampled_from(["truncate", "duplicate", "swap", "inject", "delete"]))
        if op == "truncate":
            text = text[:i]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "swap":
            k = draw(st.integers(j, len(text)))
            text = text[:i] + text[j:k] + text[i:j] + text[k:]
        elif op == "inject":
            text = text[:i] + draw(st.sampled_from(PIECES)) + text[i:]
        else:
            text = text[:i] + text[j:]
    return text


@FUZZ
@given(mutated_outputs(), st.sampled_from(SURFACES), SIZES, st.sampled_from([None, True, False]))
def test_mutated_outputs(
    text: str, surface: str, size: tuple[int, int], finished: bool | None
) -> None:
    _check(text, surface, *size, finished=finished)


def _records(n: int, coord: bool) -> str:
    v = (
        ["<|coord_12|>", "<|coord_34|>", "<|coord_256|>", "<|coord_480|>"]
        if coord
        else ["12", "34", "256", "480"]
    )
    rec = '{"desc": "person", "bbox_2d": [' + ", ".join(v) + "]}"
    return '{"objects": [' + ", ".join([rec] * n)


MEGABYTE = {
    "braces": "{" * 1_000_000,
    "brackets": "[" * 1_000_000,
    "brace_pairs": "{" + "{}" * 500_000,
    "quote_brace": '"{' * 500_000,
    "nested_containers": '{"objects": [' * 75_000,
    "garbage": "".join(chr(32 + (i * 7919) % 5000) for i in range(1_000_000)),
    "coord_truncated": _records(11_000, coord=True),
    "numeric_truncated": _records(20_000, coord=False),
}


@pytest.mark.parametrize("name", list(MEGABYTE))
def test_megabyte_inputs_are_linear(name: str) -> None:
    text = MEGABYTE[name]
    t0 = time.perf_counter()
    _check(text, "coord_tokens" if "coord" in name else "norm1000", 1024, 768)
    # quadratic scans take minutes here; the bound only has to catch that on a busy 2-core box
    assert time.perf_counter() - t0 < 30.0


# ------------------------------------------------------------------ native answer dialects

NATIVE_PRESETS = (
    "qwen25_pixel",
    "qwen3_rel1000",
    "gemma3_box2d",
    "internvl_box",
    "paligemma_loc",
    "florence2_od",
)
NATIVE_PIECES = [
    *PIECES,
    "```json\n",
    "```",
    "'",
    '"bbox_2d"',
    '"box_2d"',
    '"label"',
    "'bbox_2d'",
    ": [",
    "<think>",
    "</think>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "[[",
    "]]",
    "<loc0000>",
    "<loc1023>",
    "<loc9999>",
    "<loc",
    "<loc_0>",
    "<loc_999>",
    "<loc_5000>",
    " ; ",
    "</s>",
    "-5",
    "1e9",
]


def _check_native(text: str, preset: str, w: int, h: int) -> None:
    p = parse_answer(text, prompt_preset=preset, width=w, height=h)
    assert len(p.objects) == len(p.pred)
    for b in p.objects:
        assert 0 <= b.x0 < b.x1 <= w - 1 and 0 <= b.y0 < b.y1 <= h - 1, (b, w, h)
    for obj in p.pred:
        assert all(type(v) is int for v in obj["points"])
        assert all(0 <= s <= e <= len(text) for s, e in obj["text_spans"])
    if p.status in (ParseStatus.MALFORMED, ParseStatus.EMPTY) and not p.objects:
        assert "empty_pred" in p.errors
    if p.status is ParseStatus.OK:
        assert p.objects and not p.issues


@FUZZ
@given(st.text(), st.sampled_from(NATIVE_PRESETS), SIZES)
def test_native_arbitrary_text(text: str, preset: str, size: tuple[int, int]) -> None:
    _check_native(text, preset, *size)


@FUZZ
@given(
    st.lists(st.sampled_from(NATIVE_PIECES) | st.text(max_size=3), max_size=50),
    st.sampled_from(NATIVE_PRESETS),
    SIZES,
)
def test_native_structural_soup(parts: list[str], preset: str, size: tuple[int, int]) -> None:
    _check_native("".join(parts), preset, *size)


@pytest.mark.parametrize("preset", NATIVE_PRESETS)
def test_native_megabyte_input_is_fast(preset: str) -> None:
    text = '{"bbox_2d": [1, 2, 3, 4], "label": "a"}, <ref>x</ref><box>[[1,2,3,4]]</box>' * 12_000
    t0 = time.perf_counter()
    parse_answer("[" + text, prompt_preset=preset, width=100, height=100)
    assert time.perf_counter() - t0 < 10
