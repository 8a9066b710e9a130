"""Confidence post-op against the upstream oracle and hand-computed scores."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from coordbench.confidence.score import (
    ConfidenceOptions,
    confidence_for_record,
    postop_summary,
    scored_record,
)
from coordbench.errors import ConfigError
from coordbench.parse.output import parse_output, upstream_modes

ORACLE = Path(__file__).parent / "oracle"


def _jsonl(name: str) -> dict:
    return json.loads((ORACLE / name).read_text(encoding="utf-8").splitlines()[0])


def test_confidence_oracle_exact() -> None:
    record, trace = (
        _jsonl("conf_oracle_gt_vs_pred.jsonl"),
        _jsonl("conf_oracle_pred_token_trace.jsonl"),
    )
    line = confidence_for_record(
        record, 0, trace["generated_token_text"], trace["token_logprobs"], ConfidenceOptions()
    )
    expected = _jsonl("conf_oracle_pred_confidence.jsonl")
    assert line == expected  # floats compare exactly
    assert json.dumps(line) == json.dumps(expected)  # and key order
    scored = scored_record(record, line)
    assert json.dumps(scored) == json.dumps(_jsonl("conf_oracle_gt_vs_pred_scored.jsonl"))
    summary = json.loads((ORACLE / "conf_oracle_confidence_postop_summary.json").read_text())
    assert postop_summary([line]) == summary


def _record(text: str, surface: str, w: int, h: int) -> dict:
    p = parse_output(text, surface=surface, width=w, height=h)
    return {
        "image": "img.png",
        "width": w,
        "height": h,
        "mode": upstream_modes(surface)[0],
        "coord_mode": "pixel",
        "gt": [],
        "pred": p.pred,
        "raw_output_json": p.raw_output_json,
        "raw_special_tokens": p.raw_special_tokens,
        "raw_ends_with_im_end": p.raw_ends_with_im_end,
        "errors": p.errors,
        "error_entries": p.error_entries,
    }


WINE = (
    '{"objects": [{"desc": "wine glass", "bbox_2d": '
    "[<|coord_100|>, <|coord_200|>, <|coord_300|>, <|coord_400|>]}]}"
)
WINE_TOKENS = [
    '{"',
    "objects",
    '":',
    ' [{"',
    "desc",
    '":',
    ' "',
    "wine",
    " glass",
    '",',
    ' "',
    "bbox",
    "_",
    "2",
    "d",
    '":',
    " [",
    "<|coord_100|>",
    ",",
    " ",
    "<|coord_200|>",
    ",",
    " ",
    "<|coord_300|>",
    ",",
    " ",
    "<|coord_400|>",
    "]}",
    "]}",
]


def _wine_logprobs() -> list[float]:
    lps = [0.0] * len(WINE_TOKENS)
    lps[7], lps[8] = math.log(0.5), math.log(0.25)  # desc tokens `wine`, ` glass`
    for i in (17, 20, 23, 26):  # the four coord tokens
        lps[i] = math.log(0.2)
    return lps


def test_fused_score_hand_computed() -> None:
    """[UP-CONF-SCORE] unit case.

    geom = exp(mean(ln .2 x4)) = 0.2, desc = sqrt(.5*.25), fused 0.6/0.4.
    """
    record = _record(WINE, "coord_tokens", 1024, 768)
    line = confidence_for_record(
        record, 0, WINE_TOKENS, _wine_logprobs(), ConfidenceOptions(w_geom=0.6, w_desc=0.4)
    )
    (obj,) = line["objects"]
    desc = math.sqrt(0.5 * 0.25)
    assert obj["score_geom"] == pytest.approx(0.2, abs=1e-12)
    assert obj["score_desc"] == pytest.approx(desc, abs=1e-12)
    assert obj["score"] == pytest.approx(0.6 * 0.2 + 0.4 * desc, abs=1e-12)  # 0.26142135623730953
    details = obj["confidence_details"]
    assert details["matched_token_indices"] == [17, 20, 23, 26]
    assert details["desc_span_token_indices"] == [7, 8]
    assert details["fusion_weights"] == {"w_geom": 0.6, "w_desc": 0.4}


NUMERIC = '{"objects": [{"desc": "a", "bbox_2d": [12, 5, 300, 40]}]}<|im_end|>'
NUMERIC_TOKENS = [
    '{"',
    "objects",
    '":',
    ' [{"',
    "desc",
    '":',
    ' "',
    "a",
    '",',
    ' "',
    "bbox",
    "_",
    "2",
    "d",
    '":',
    " [",
    "1",
    "2",
    ",",
    " ",
    "5",
    ",",
    " ",
    "3",
    "0",
    "0",
    ",",
    " ",
    "4",
    "0",
    "]}",
    "]}",
    "<|im_end|>",
]
NUMERIC_P = {16: 0.5, 17: 0.5, 20: 0.8, 23: 0.9, 24: 0.9, 25: 0.9, 28: 0.6, 29: 0.6}  # digit tokens


def test_numeric_text_surface_hand_computed() -> None:
    record = _record(NUMERIC, "norm1000", 1000, 1000)  # /999*(W-1) is the identity at W=1000
    assert record["pred"][0]["points"] == [12, 5, 300, 40]
    lps = [math.log(NUMERIC_P.get(i, 1.0)) for i in range(len(NUMERIC_TOKENS))]
    (obj,) = confidence_for_record(record, 3, NUMERIC_TOKENS, lps, ConfidenceOptions())["objects"]
    geom = math.prod(NUMERIC_P.values()) ** (1 / 8)  # geometric mean of the 8 digit tokens
    assert obj["kept"] and obj["score"] == pytest.approx(geom, abs=1e-12)
    assert (
        obj["score_desc"] is None and obj["score_fusion"] == obj["score"]
    )  # numeric: geometry only
    details = obj["confidence_details"]
    assert details["geom_span_mode"] == "numeric_text"
    assert details["matched_token_indices"] == sorted(NUMERIC_P)
    assert "fusion_weights" not in details and "desc_span_token_indices" not in details
    # upstream counts every (start, end) whose concatenation strips (blanks, `[`, `,`, `]`) to
    # the literal: "12" from starts " [" and "1", each as "12", "12,", "12, " -> 6; "5" from
    # ",", " ", "5" x3 -> 9; "300" from "," (2, span cap 6), " " (3), "3" (3) -> 8; "40" from
    # ",", " ", "4" once each ("40]}" keeps "}") -> 3
    assert details["ambiguous_matches"] == (6 - 1) + (9 - 1) + (8 - 1) + (3 - 1)


def test_pixel_values_above_999_scored_unless_upstream_range() -> None:
    text = '{"objects": [{"desc": "a", "bbox_2d": [1000, 5, 1200, 40]}]}'
    tokens = [
        '{"',
        "objects",
        '":',
        ' [{"',
        "desc",
        '":',
        ' "',
        "a",
        '",',
        ' "',
        "bbox",
        "_",
        "2",
        "d",
        '":',
        " [",
        "1",
        "0",
        "0",
        "0",
        ",",
        " ",
        "5",
        ",",
        " ",
        "1",
        "2",
        "0",
        "0",
        ",",
        " ",
        "4",
        "0",
        "]}",
        "]}",
    ]
    record = _record(text, "pixel", 1280, 720)
    lps = [-0.1] * len(tokens)
    (ours,) = confidence_for_record(record, 0, tokens, lps, ConfidenceOptions())["objects"]
    assert ours["kept"] and ours["score"] == pytest.approx(math.exp(-0.1), abs=1e-12)
    upstream = ConfidenceOptions(upstream_numeric_bin_range=True)
    (up,) = confidence_for_record(record, 0, tokens, lps, upstream)["objects"]
    assert not up["kept"] and up["confidence_details"]["failure_reason"] == "missing_coord_bins"


def _reason(line: dict) -> list[str | None]:
    return [o["confidence_details"]["failure_reason"] for o in line["objects"]]


def test_failure_reasons_and_scored_record() -> None:
    record = _record(WINE, "coord_tokens", 1024, 768)
    lps = _wine_logprobs()
    opts = ConfidenceOptions()
    lines = [
        confidence_for_record(record, 0, None, None, opts),
        confidence_for_record(record, 1, WINE_TOKENS, lps[:-1], opts),
        confidence_for_record(
            {**record, "pred": [{**record["pred"][0], "points": [1, 2, 3, 4]}]},
            2,
            WINE_TOKENS,
            lps,
            opts,
        ),
        confidence_for_record(
            record,
            3,
            WINE_TOKENS,
            [float("-inf") if i == 20 else v for i, v in enumerate(lps)],
            opts,
        ),
        confidence_for_record(
            record, 4, [t.replace("<|coord_400|>", "4") for t in WINE_TOKENS], lps, opts
        ),
        confidence_for_record({**record, "pred": []}, 5, WINE_TOKENS, lps, opts),
        confidence_for_record(
            record, 6, WINE_TOKENS, [1e4 if i == 17 else v for i, v in enumerate(lps)], opts
        ),
    ]
    assert [_reason(line) for line in lines] == [
        ["missing_trace"],
        ["trace_len_mismatch"],
        ["pred_alignment_mismatch"],
        ["nonfinite_logprob"],
        ["missing_span"],
        [],
        ["nonfinite_logprob"],
    ]
    scored = scored_record(record, lines[0])
    assert scored["pred"] == [] and scored["pred_score_source"] == "confidence_postop"
    assert (
        scored["pred_score_version"] == 2 and scored["raw_output_json"] == record["raw_output_json"]
    )
    summary = postop_summary(lines)
    assert summary["total_samples"] == 7 and summary["total_pred_objects"] == 6
    assert summary["kept_pred_objects"] == 0 and summary["kept_fraction"] == 0.0
    assert summary["dropped_by_reason"] == {
        "missing_trace": 1,
        "trace_len_mismatch": 1,
        "pred_alignment_mismatch": 1,
        "nonfinite_logprob": 2,
        "missing_span": 1,
    }
    assert postop_summary([lines[5]])["kept_fraction"] == 1.0  # no preds at all


def test_poly_and_desc_policies() -> None:
    poly = (
        '{"objects": [{"desc": "a", "poly": '
        "[<|coord_0|>, <|coord_0|>, <|coord_9|>, <|coord_0|>, <|coord_9|>, <|coord_9|>]}]}"
    )
    record = _record(poly, "coord_tokens", 100, 100)
    line = confidence_for_record(record, 0, ["<|coord_0|>"], [0.0], ConfidenceOptions())
    assert _reason(line) == ["unsupported_geometry_type"]
    # geometry_first: no `desc` token before the box -> desc span missing
    geo = (
        '{"objects": [{"bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_30|>, <|coord_40|>], '
        '"desc": "dog"}]}'
    )
    tokens = [
        '{"',
        "objects",
        '":',
        ' [{"',
        "bbox",
        "_",
        "2",
        "d",
        '":',
        " [",
        "<|coord_1|>",
        ",",
        " ",
        "<|coord_2|>",
        ",",
        " ",
        "<|coord_30|>",
        ",",
        " ",
        "<|coord_40|>",
        "],",
        ' "',
        "desc",
        '":',
        ' "',
        "dog",
        '"}',
        "]}",
    ]
    record = _record(geo, "coord_tokens", 100, 100)
    lps = [math.log(0.5)] * len(tokens)
    best = confidence_for_record(record, 0, tokens, lps, ConfidenceOptions())["objects"][0]
    assert (
        best["kept"]
        and best["score"] == pytest.approx(0.5, abs=1e-12)
        and best["score_desc"] is None
    )
    strict = confidence_for_record(
        record, 0, tokens, lps, ConfidenceOptions(desc_span_policy="strict")
    )
    assert _reason(strict) == ["missing_desc_span"]


def test_empty_desc_span_policy() -> None:
    raw = {"objects": [{"desc": "", "bbox_2d": [10, 10, 50, 50]}]}
    record = {
        "image": "x",
        "width": 1000,
        "height": 1000,
        "mode": "coord",
        "coord_mode": "pixel",
        "pred": [{"type": "bbox_2d", "points": [10, 10, 50, 50], "desc": ""}],
        "raw_output_json": raw,
        "raw_special_tokens": [],
    }
    tokens = [
        "desc",
        '":',
        ' "",',
        ' "',
        "bbox",
        '":',
        " [",
        "<|coord_10|>",
        ",",
        "<|coord_10|>",
        ",",
        "<|coord_50|>",
        ",",
        "<|coord_50|>",
        "]}",
    ]
    lps = [math.log(0.8)] * len(tokens)
    geom_only = confidence_for_record(record, 0, tokens, lps, ConfidenceOptions())["objects"][0]
    assert geom_only["kept"] and geom_only["score"] == pytest.approx(0.8, abs=1e-12)
    assert geom_only["confidence_details"]["desc_span_token_indices"] == []
    drop = confidence_for_record(
        record, 0, tokens, lps, ConfidenceOptions(empty_desc_policy="drop")
    )
    assert _reason(drop) == ["missing_desc_span"]


def test_options_validated() -> None:
    with pytest.raises(ConfigError, match="w_geom"):
        ConfidenceOptions(w_geom=-1)
    with pytest.raises(ConfigError, match="w_desc"):
        ConfidenceOptions(w_desc=float("nan"))
    with pytest.raises(ConfigError, match="> 0"):
        ConfidenceOptions(w_geom=0, w_desc=0)
    with pytest.raises(ConfigError, match="logprob_source"):
        ConfidenceOptions(logprob_source="logits")
    assert ConfidenceOptions(w_geom=3, w_desc=1).weights() == (0.75, 0.25)
    assert ConfidenceOptions().identity()["logprob_source"] == "raw"


def test_never_raises_and_scores_are_probabilities() -> None:
    """Seeded junk traces and records: every kept score is in (0, 1]; nothing raises."""
    rng = random.Random(5)
    pieces = WINE_TOKENS + NUMERIC_TOKENS + ["<|coord_1000|>", "<|endoftext|>", "", "desc"]
    specials = [float("-inf"), float("inf"), float("nan"), 0.0, 3.0, None, "x"]
    for _ in range(300):
        text = rng.choice(
            [WINE, NUMERIC, '{"objects": [{"desc": "a", "bbox_2d": [1, 2, 30, 4000]}]}']
        )
        surface = rng.choice(["coord_tokens", "norm1000", "pixel", "rel1000"])
        record = _record(text, surface, rng.choice([1, 64, 1000, 1280]), 720)
        if rng.random() < 0.2:
            record["pred"] = record["pred"] + [
                rng.choice([{}, {"type": "poly"}, "junk", {"points": None}])
            ]
        if rng.random() < 0.1:
            record["raw_output_json"] = rng.choice([{"objects": "x"}, {"objects": [1, None]}, []])
        tokens = [rng.choice(pieces) for _ in range(rng.randint(0, 40))]
        lps = [rng.choice(specials) if rng.random() < 0.1 else -rng.random() for _ in tokens]
        line = confidence_for_record(record, 0, tokens, lps, ConfidenceOptions())
        assert len(line["objects"]) == len(record["pred"])
        for obj in line["objects"]:
            assert obj["kept"] == (obj["confidence_details"]["failure_reason"] is None)
            assert not obj["kept"] or 0.0 < obj["score"] <= 1.0
        assert len(scored_record(record, line)["pred"]) == sum(o["kept"] for o in line["objects"])
