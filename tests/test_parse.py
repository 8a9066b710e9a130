"""parse_output against the upstream oracle (all 36 rows) and hand-computed cases."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from coordbench.errors import ConfigError, DataError
from coordbench.parse.output import CANONICAL, ParseOptions, parse_output, upstream_modes
from coordbench.parse.scan import first_json_block, special_tokens, strip_control_tokens
from coordbench.types import SURFACES, ParseStatus

ORACLE = Path(__file__).parent / "oracle" / "parse_oracle.jsonl"
ROWS = [json.loads(line) for line in ORACLE.read_text(encoding="utf-8").splitlines()]


def _surface(row: dict) -> str:
    """The coordbench surface that reproduces an oracle row's upstream (mode, pred_coord_mode).

    Upstream `auto` in text mode reads bare numbers as pixels when the image's long side is
    <= 999 ([UP-COORD-FRAME]; these rows have no value above 999 and no tokens), else as norm1000.
    """
    if row["mode"] == "coord":
        return "coord_tokens"
    if row["pred_coord_mode"] in ("norm1000", "pixel"):
        return row["pred_coord_mode"]
    return "pixel" if max(row["width"], row["height"]) <= 999 else "norm1000"


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['case']}-{r['width']}" for r in ROWS])
def test_parse_oracle(row: dict) -> None:
    p = parse_output(
        row["raw_text"], surface=_surface(row), width=row["width"], height=row["height"]
    )
    # key order matters too (upstream json.dumps writes it): compare serialized
    assert json.dumps(p.raw_output_json) == json.dumps(row["expected_raw_output_json"])
    assert p.pred == row["expected_pred"]
    # oracle README: errors are pre-canonicalization (`degenerate`); gt_vs_pred holds canonical ones
    assert p.errors == [CANONICAL.get(c, c) for c in row["expected_errors"]]
    assert [e["code"] for e in p.error_entries] == p.errors
    assert p.raw_special_tokens == row["expected_raw_special_tokens"]
    assert p.raw_ends_with_im_end is row["expected_raw_ends_with_im_end"]


# status and issues per oracle case (desc_first prompt, finished unknown)
EXPECTED_STATUS = {
    "clean_coord_desc_first": ("ok", ()),
    "clean_coord_geometry_first": ("salvaged", ("field_order_mismatch",)),
    "truncated_coord_tail": ("truncated", ("dropped_incomplete_tail",)),
    "mixed_field_order_drops_minority": ("salvaged", ("order_violation",)),
    "quoted_tokens_record_dropped": ("salvaged", ("wrong_arity",)),
    "extra_key_record_dropped": ("salvaged", ("unexpected_keys",)),
    "empty_desc_record_dropped": ("salvaged", ("missing_desc",)),
    "reversed_box_kept_at_infer": ("salvaged", ("reversed_box",)),
    "degenerate_after_rounding": ("salvaged", ("degenerate",)),
    "poly_coord": ("ok", ()),
    "no_json": ("empty", ()),  # "I cannot see anything." is a refusal: empty (parse.refusal)
    "empty_objects": ("empty", ()),
    "leading_junk_then_container": ("salvaged", ("junk_around_json",)),
    "numeric_text_norm1000_valid_json": ("ok", ()),
    "numeric_text_auto_mode_small_image_treated_as_pixel": ("ok", ()),
    "numeric_text_truncated_only_first_object_survives": (
        "truncated",
        ("dropped_incomplete_tail", "dropped_truncated_record"),
    ),
    "numeric_text_missing_desc_kept_with_empty_desc": ("salvaged", ("empty_desc",)),
    "coord_token_out_of_range_1000": ("salvaged", ("coord_range",)),  # the object drop: oracle
}


@pytest.mark.parametrize("row", ROWS[::2], ids=[r["case"] for r in ROWS[::2]])
def test_oracle_status_and_objects(row: dict) -> None:
    w, h = row["width"], row["height"]
    p = parse_output(row["raw_text"], surface=_surface(row), width=w, height=h)
    status, issues = EXPECTED_STATUS[row["case"]]
    assert (p.status.value, p.issues) == (status, issues)
    kept = [
        o
        for o in row["expected_pred"]
        if o["type"] == "poly"
        or (o["points"][2] > o["points"][0] and o["points"][3] > o["points"][1])
    ]
    assert len(p.objects) == len(kept)
    for b in p.objects:
        assert 0 <= b.x0 < b.x1 <= w - 1 and 0 <= b.y0 < b.y1 <= h - 1 and b.score is None


# --------------------------------------------------------------------------- surfaces


def _one(values: str, surface: str, w: int = 1024, h: int = 768) -> list[int]:
    text = '{"objects": [{"desc": "a", "bbox_2d": [' + values + "]}]}"
    p = parse_output(text, surface=surface, width=w, height=h)
    assert len(p.pred) == 1, p
    return p.pred[0]["points"]


def test_surface_formulas_hand_computed() -> None:
    # norm1000: round(k/999*(W-1)); 300/999*1023 = 307.2 -> 307, 400/999*767 = 307.1 -> 307
    assert _one("100, 200, 300, 400", "norm1000") == [102, 154, 307, 307]
    assert _one("<|coord_100|>, <|coord_200|>, <|coord_300|>, <|coord_400|>", "coord_tokens") == [
        102,
        154,
        307,
        307,
    ]
    # pixel: as given, clamped to W-1 / H-1
    assert _one("100, 200, 1500, 900", "pixel") == [100, 200, 1023, 767]
    # rel1000 (Qwen3-VL): round(v/1000*W): 500/1000*640 = 320, 1000 -> 640 -> clamp 639
    assert _one("500, 250, 1000, 1000", "rel1000", 640, 480) == [320, 120, 639, 479]
    # half-even: 125/1000*100 = 12.5 -> 12, 375/1000*100 = 37.5 -> 38
    assert _one("125, 125, 375, 375", "rel1000", 100, 100) == [12, 12, 38, 38]
    # norm1000 text mode has no range check upstream: 1500 scales past the edge, then clamps
    assert _one("0, 0, 1500, 999", "norm1000") == [0, 0, 1023, 767]


def test_surface_mapping_and_bad_arguments() -> None:
    assert [upstream_modes(s) for s in SURFACES] == [
        ("coord", "auto"),
        ("text", "norm1000"),
        ("text", "pixel"),
        ("text", "rel1000"),
    ]
    with pytest.raises(ConfigError, match="surface"):
        parse_output("{}", surface="coords", width=10, height=10)
    with pytest.raises(DataError, match="width"):
        parse_output("{}", surface="pixel", width=0, height=10)
    with pytest.raises(ConfigError, match="field_order"):
        ParseOptions(field_order="sorted")
    ident = ParseOptions(keep_truncated_numeric_objects=True).identity()
    assert ident["keep_truncated_numeric_objects"] is True and "parse_version" in ident


def test_coord_surface_rejects_out_of_range_numbers() -> None:
    text = '{"objects": [{"desc": "a", "bbox_2d": [1, 2, 1000, 400]}]}'
    p = parse_output(text, surface="coord_tokens", width=100, height=100)
    assert p.pred == [] and p.errors == ["invalid_coord", "empty_pred"]
    assert p.issues == ("coord_range",) and p.status is ParseStatus.SALVAGED


# --------------------------------------------------------------------------- status


def test_status_rules() -> None:
    ok = (
        '{"objects": [{"desc": "a", "bbox_2d": '
        "[<|coord_1|>, <|coord_2|>, <|coord_30|>, <|coord_40|>]}]}"
    )

    def st(text: str, finished: bool | None = None) -> str:
        return parse_output(
            text, surface="coord_tokens", width=64, height=64, finished=finished
        ).status.value

    assert st(ok + "<|im_end|>") == "ok"
    assert st(ok, finished=False) == "truncated"  # the backend hit max_new_tokens
    assert st(ok[:-3]) == "truncated"  # text ends inside the container
    assert st("") == "empty" and st("  <|im_end|><|endoftext|>") == "empty"
    assert st('{"objects": []}<|im_end|>') == "empty"
    assert st("I see nothing<|im_end|>") == "malformed"
    assert st("<|coord_5|>") == "malformed"
    assert st('{"objects": []} trailing words') == "salvaged"


def test_reversed_box_in_pred_not_in_objects() -> None:
    text = (
        '{"objects": [{"desc": "a", "bbox_2d": [500, 500, 100, 100]}, '
        '{"desc": "b", "bbox_2d": [1, 1, 9, 9]}]}'
    )
    p = parse_output(text, surface="pixel", width=640, height=480)
    assert [o["points"] for o in p.pred] == [[500, 479, 100, 100], [1, 1, 9, 9]]  # y clamps to H-1
    assert [(b.label, b.xyxy()) for b in p.objects] == [("b", [1.0, 1.0, 9.0, 9.0])]
    # y 500 > H clamps to H-1 as upstream, and is said (out_of_frame, round 3)
    assert p.status is ParseStatus.SALVAGED and p.errors == []
    assert p.issues == ("out_of_frame", "reversed_box")


def test_truncated_numeric_option() -> None:
    text = (
        '{"objects": [{"desc": "a", "bbox_2d": [1, 2, 30, 40]}, '
        '{"desc": "b", "bbox_2d": [5, 6, 70, 80]}, {"desc": "c", "bbox_2d": [5'
    )
    up = parse_output(text, surface="norm1000", width=1024, height=768)
    assert [o["desc"] for o in up.pred] == ["a"]  # [UP-TRUNCATION]
    opts = ParseOptions(keep_truncated_numeric_objects=True)
    ours = parse_output(text, surface="norm1000", width=1024, height=768, options=opts)
    assert ours.raw_output_json == {
        "objects": [
            {"desc": "a", "bbox_2d": [1, 2, 30, 40]},
            {"desc": "b", "bbox_2d": [5, 6, 70, 80]},
        ]
    }
    assert [o["desc"] for o in ours.pred] == ["a", "b"] and ours.status is ParseStatus.TRUNCATED
    assert ours.issues == ("dropped_incomplete_tail",)


# --------------------------------------------------------------------------- upstream shapes


@pytest.mark.parametrize(
    ("text", "raw", "descs"),
    [
        # index-keyed dict: values sorted by int key
        (
            '{"1": {"desc": "b", "bbox_2d": [5, 6, 70, 80]}, '
            '"0": {"desc": "a", "bbox_2d": [1, 2, 30, 40]}}',
            {
                "objects": [
                    {"desc": "a", "bbox_2d": [1, 2, 30, 40]},
                    {"desc": "b", "bbox_2d": [5, 6, 70, 80]},
                ]
            },
            ["a", "b"],
        ),
        # a single object at the top level
        (
            '{"desc": "a", "bbox_2d": [1, 2, 30, 40]}',
            {"objects": [{"desc": "a", "bbox_2d": [1, 2, 30, 40]}]},
            ["a"],
        ),
        # parse_prediction's last chance: {"obj": {...}} next to another key;
        # raw_output_json stays null
        ('{"obj": {"desc": "a", "bbox_2d": [1, 2, 30, 40]}, "n": 1}', None, ["a"]),
        # extra top-level keys are dropped
        (
            '{"objects": [{"desc": "a", "bbox_2d": [1, 2, 30, 40]}], "note": "x"}',
            {"objects": [{"desc": "a", "bbox_2d": [1, 2, 30, 40]}]},
            ["a"],
        ),
        # `{` then blanks at the very end: upstream salvage accepts an empty, truncated container
        ("nothing here {  ", {"objects": []}, []),
        # a trailing comma in the array is accepted by salvage
        (
            '{"objects": [{"desc": "a", "bbox_2d": '
            "[<|coord_1|>, <|coord_2|>, <|coord_30|>, <|coord_40|>]}, ]}",
            {"objects": [{"desc": "a", "bbox_2d": [1, 2, 30, 40]}]},
            ["a"],
        ),
        # ints like 0123 / 12.5 are not bare norm1000 ints: the record is dropped (wrong_arity)
        (
            '{"objects": [{"desc": "a", "bbox_2d": [<|coord_1|>, 0123, 30, 40]}]}',
            {"objects": []},
            [],
        ),
    ],
)
def test_upstream_shapes(text: str, raw: dict | None, descs: list[str]) -> None:
    p = parse_output(text, surface="norm1000", width=100, height=100)
    assert p.raw_output_json == raw
    assert [o["desc"] for o in p.pred] == descs


def test_values_upstream_crashes_on_are_dropped() -> None:
    # upstream raises on NaN/inf (int(round())) and on quoted tokens above 999
    text = (
        '{"objects": [{"desc": "n", "bbox_2d": [NaN, 1, 2, 3]},'
        ' {"desc": "i", "bbox_2d": [1, Infinity, 5, 6]},'
        ' {"desc": "t", "bbox_2d": ["<|coord_1000|>", 1, 2, 3]},'
        ' {"desc": "big", "bbox_2d": [-1e308, 1e308, 1e308, 5]},'
        ' {"desc": "s", "bbox_2d": ["12", 3, "40", 50]}]}'
    )
    p = parse_output(text, surface="pixel", width=640, height=480)
    # "big": clamped from +-1e308 (out_of_frame), then y0 > y1 (reversed_box)
    assert p.issues == ("nonfinite", "nonfinite", "coord_parse", "out_of_frame", "reversed_box")
    assert p.pred == [
        {"type": "bbox_2d", "points": [0, 479, 639, 5], "desc": "big"},
        {"type": "bbox_2d", "points": [12, 3, 40, 50], "desc": "s"},
    ]
    assert [b.label for b in p.objects] == ["s"]


def test_error_entries_are_upstream_messages() -> None:
    p = parse_output(
        '{"objects": [{"desc": "a", "bbox_2d": [5, 5, 5, 9]}]}',
        surface="pixel",
        width=64,
        height=64,
    )
    assert p.error_entries == [
        {
            "code": "invalid_geometry",
            "message": "Prediction contains invalid geometry.",
            "stage": "infer.validate_pred",
        },
        {
            "code": "empty_pred",
            "message": "Prediction parsing produced no valid objects.",
            "stage": "infer.parse_pred",
        },
    ]


# --------------------------------------------------------------------------- scanners


def _naive_block_end(text: str, start: int) -> int | None:
    """End of the balanced block opening at `text[start]`, string/escape aware; None if open."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{}":
            depth += 1 if c == "{" else -1
            if depth == 0:
                return i + 1
    return None


def _naive_block(text: str) -> tuple[int, int] | None:
    """[UP-PARSE] literally: scan from every `{`, string/escape aware, first balanced wins."""
    for start, ch in enumerate(text):
        if ch != "{":
            continue
        end = _naive_block_end(text, start)
        if end is not None:
            return start, end
    return None


def test_first_json_block_matches_literal_scan() -> None:
    rng = random.Random(7)
    for _ in range(4000):
        s = "".join(rng.choice('{}"\\ax') for _ in range(rng.randint(0, 16)))
        assert first_json_block(s) == _naive_block(s), s
    # long inputs take the vectorized path when there is no backslash
    for _ in range(20):
        s = "".join(rng.choice('{}"ax') for _ in range(5000))
        assert first_json_block(s) == _naive_block(s)


def test_special_tokens_match_upstream_regex() -> None:
    rng = random.Random(3)
    pattern = re.compile(r"<\|.*?\|>")
    for _ in range(3000):
        s = "".join(rng.choice("<|>\na") for _ in range(rng.randint(0, 16)))
        assert special_tokens(s) == pattern.findall(s), s
    assert strip_control_tokens(" <|im_end|><|coord_5|>\n") == "<|coord_5|>"
