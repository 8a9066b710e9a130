"""Native answer dialects: cases written from each family's model card / official parser docs,
agreement with supervision's Qwen parsers, thinking spans, statuses and trace confidence."""

from __future__ import annotations

import math
import re
import warnings

import pytest

import coordbench
from coordbench.confidence.score import confidence_for_record
from coordbench.config.options import ConfidenceOptions
from coordbench.config.presets import load_prompt_preset
from coordbench.config.prompts import build_messages, prompt_template_hash
from coordbench.parse.answer import parse_answer
from coordbench.types import ParseStatus

W, H = 640, 480

QWEN3 = """```json
[
\t{"bbox_2d": [100, 200, 500, 800], "label": "cat"},
\t{"bbox_2d": [600, 100, 950, 400], "label": "dog"}
]
```"""


def boxes(parsed):
    return [(o.label, o.xyxy()) for o in parsed.objects]


# --------------------------------------------------------------------- per-dialect formats


def test_qwen3_fenced_list_reads_every_box_in_rel1000():
    p = parse_answer(QWEN3, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert p.status is ParseStatus.OK
    # 100/1000*640 = 64, 200/1000*480 = 96, 500 -> 320, 800 -> 384 (hand-computed)
    assert boxes(p) == [("cat", [64.0, 96.0, 320.0, 384.0]), ("dog", [384.0, 48.0, 608.0, 192.0])]


def test_qwen25_pixel_values_are_pixels_and_clamped():
    text = '[{"bbox_2d": [10, 20, 700, 300], "label": "car"}]'
    p = parse_answer(text, prompt_preset="qwen25_pixel", width=W, height=H)
    # clamped, and said (round 3): 700 is beyond the 640-px input
    assert p.status is ParseStatus.SALVAGED and "out_of_frame" in p.issues
    assert boxes(p) == [("car", [10.0, 20.0, 639.0, 300.0])]


@pytest.mark.parametrize(
    "text",
    [
        # single quotes (Python-style), prose around, extra key, `desc`/`name` labels
        "Here are the boxes:\n[{'bbox_2d': [100, 200, 500, 800], 'label': 'cat'}, "
        "{'bbox_2d': [600, 100, 950, 400], 'name': 'dog', 'point_2d': [700, 200]}]\nDone.",
        # trailing commas
        '```json\n[{"bbox_2d": [100, 200, 500, 800], "desc": "cat",},'
        ' {"bbox_2d": [600, 100, 950, 400], "label": "dog"},]\n```',
        # bare, no fence
        '[{"bbox_2d": [100, 200, 500, 800], "label": "cat"}, '
        '{"bbox_2d": [600, 100, 950, 400], "label": "dog"}]',
    ],
)
def test_qwen_json_variants_read_like_the_official_parsers(text):
    p = parse_answer(text, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert [b[0] for b in boxes(p)] == ["cat", "dog"]
    assert boxes(p)[1][1] == [384.0, 48.0, 608.0, 192.0]


def test_truncated_qwen_keeps_every_complete_object():
    text = QWEN3[: QWEN3.index('"dog"') - 10]
    p = parse_answer(text, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert p.status is ParseStatus.TRUNCATED
    assert boxes(p) == [("cat", [64.0, 96.0, 320.0, 384.0])]


def test_thinking_is_stripped_and_kept():
    draft = '[{"bbox_2d": [1, 1, 5, 5], "label": "draft"}]'
    text = f"<think>First a draft: {draft}. Now the answer.</think>\n\n{QWEN3}"
    p = parse_answer(text, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert [b[0] for b in boxes(p)] == ["cat", "dog"]
    assert p.reasoning_text.startswith("First a draft") and p.status_fields()["reasoning_text"]


def test_unclosed_think_means_no_answer():
    text = f"<think>maybe {QWEN3}"
    p = parse_answer(text, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert p.objects == () and p.status is ParseStatus.EMPTY
    assert "cat" in p.reasoning_text


@pytest.mark.parametrize("preset", ["qwen25_pixel", "qwen3_rel1000", "gemma3_box2d"])
def test_empty_list_is_empty(preset):
    p = parse_answer("```json\n[]\n```", prompt_preset=preset, width=W, height=H)
    assert p.status is ParseStatus.EMPTY and p.objects == ()


def test_unreadable_box_beside_a_good_one_is_salvaged():
    # malformed means no objects (round 3): the good box is kept, the bad one named
    text = '[{"bbox_2d": [100, 200, 500, 800], "label": "cat"}, {"bbox_2d": [1, 2], "label": "x"}]'
    p = parse_answer(text, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert p.status is ParseStatus.SALVAGED and len(p.objects) == 1
    assert "bad_coordinates" in p.issues


@pytest.mark.parametrize("value", ["true", "false", '"12"', "null"])
def test_non_numbers_are_never_coordinates(value):
    text = f'[{{"bbox_2d": [{value}, 200, 500, 800], "label": "cat"}}]'
    p = parse_answer(text, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert p.objects == () and p.status is ParseStatus.MALFORMED


def test_gemma3_box2d_is_yx_order():
    text = '```json\n[{"box_2d": [100, 200, 500, 800], "label": "cat"}]\n```'
    p = parse_answer(text, prompt_preset="gemma3_box2d", width=W, height=H)
    # ymin 100 -> 48, xmin 200 -> 128, ymax 500 -> 240, xmax 800 -> 512
    assert boxes(p) == [("cat", [128.0, 48.0, 512.0, 240.0])]


def test_internvl_several_boxes_per_ref():
    text = (
        "<ref>person</ref><box>[[100, 200, 500, 800], [600, 100, 950, 400]]</box>\n"
        "<ref>car</ref><box>[[0, 0, 1000, 1000]]</box>"
    )
    p = parse_answer(text, prompt_preset="internvl_box", width=W, height=H)
    assert p.status is ParseStatus.OK
    assert boxes(p) == [
        ("person", [64.0, 96.0, 320.0, 384.0]),
        ("person", [384.0, 48.0, 608.0, 192.0]),
        ("car", [0.0, 0.0, 639.0, 479.0]),
    ]


def test_internvl_truncated_and_broken():
    cut = "<ref>person</ref><box>[[100, 200, 500, 800]]</box><ref>car</ref><box>[[0, 0,"
    p = parse_answer(cut, prompt_preset="internvl_box", width=W, height=H)
    assert p.status is ParseStatus.TRUNCATED and len(p.objects) == 1
    bad = "<ref>person</ref><box>[[100, 200, 500]]</box>"
    assert parse_answer(bad, prompt_preset="internvl_box", width=W, height=H).status == "malformed"


def test_paligemma_loc_bins_of_1024_yx():
    text = "<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc1023><loc1023> dog"
    p = parse_answer(text, prompt_preset="paligemma_loc", width=1024, height=512)
    # y1 256/1024*512=128, x1 128/1024*1024=128, y2 768/1024*512=384, x2 512
    assert boxes(p) == [("cat", [128.0, 128.0, 512.0, 384.0]), ("dog", [0.0, 0.0, 1023.0, 511.0])]
    three = "<loc0256><loc0128><loc0768> cat ; <loc0000><loc0000><loc1023><loc1023> dog"
    q = parse_answer(three, prompt_preset="paligemma_loc", width=1024, height=512)
    assert q.status is ParseStatus.SALVAGED and len(q.objects) == 1


def test_florence2_bins_at_centres_and_label_runs():
    text = "</s><s>car<loc_52><loc_333><loc_932><loc_774>wheel<loc_100><loc_600><loc_199><loc_699>"
    text += "<loc_700><loc_600><loc_799><loc_699></s>"
    p = parse_answer(text, prompt_preset="florence2_od", width=1000, height=2000)
    # x = (k + 0.5) / 1000 * W: 52 -> 52.5 -> round 52; y 333 -> 667
    assert boxes(p)[0] == ("car", [52.0, 667.0, 932.0, 1549.0])
    assert [b[0] for b in boxes(p)] == ["car", "wheel", "wheel"]


@pytest.mark.parametrize(
    "preset", ["qwen25_pixel", "qwen3_rel1000", "internvl_box", "paligemma_loc", "florence2_od"]
)
def test_prose_without_boxes_is_malformed(preset):
    p = parse_answer("Here are the objects you asked for.", prompt_preset=preset, width=W, height=H)
    assert p.status is ParseStatus.MALFORMED and p.objects == ()
    # a refusal ("nothing is there") is empty (tests/test_parse_round3.py has the rule)
    p = parse_answer("I cannot see any objects.", prompt_preset=preset, width=W, height=H)
    assert p.status is ParseStatus.EMPTY and p.objects == ()


def test_public_api_is_exported():
    p = coordbench.parse_answer(QWEN3, prompt_preset="qwen3_rel1000", width=W, height=H)
    assert p.objects[0].label == "cat" and p.objects[0].xyxy() == [64.0, 96.0, 320.0, 384.0]


@pytest.mark.parametrize(
    ("preset", "needle"),
    [
        ("qwen3_rel1000", "Report bbox coordinates in JSON format."),
        ("paligemma_loc", "detect person ; bicycle"),
        ("florence2_od", "<OD>"),
        ("gemma3_box2d", "box_2d"),
        ("internvl_box", "Please detect and label all objects"),
    ],
)
def test_presets_send_the_family_prompt(preset, needle):
    p = load_prompt_preset(preset)
    messages = build_messages(p, image=None)
    assert [m["role"] for m in messages] == ["user"]
    assert any(needle in c.get("text", "") for c in messages[0]["content"])
    assert len(prompt_template_hash(p)) == 64


# ------------------------------------------------------- supervision as an independent oracle


def _supervision():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("supervision.detection.vlm")


ORACLE_CASES = [
    QWEN3,
    "Sure.\n" + QWEN3 + "\nAnything else?",
    "[{'bbox_2d': [12, 30, 400, 470], 'label': 'person'}, {'bbox_2d': [5, 5, 90, 99], "
    "'label': 'cup'}]",
    '```json\n[{"bbox_2d": [12, 30, 400, 470], "label": "person", "point_2d": [3, 4]},\n'
    ' {"bbox_2d": [5, 5, 90, 99], "label": "cup"},\n {"bbox_2d": [7, 8',
    '```json\n[\n  {"bbox_2d": [12, 30, 400, 470], "label": "person"},\n]\n```',
    "```json\n[]\n```",
]


@pytest.mark.parametrize("text", ORACLE_CASES)
@pytest.mark.parametrize("preset", ["qwen25_pixel", "qwen3_rel1000"])
def test_agrees_with_supervision(text, preset):
    vlm = _supervision()
    if preset == "qwen3_rel1000":
        xyxy, _, names = vlm.from_qwen_3_vl(text, resolution_wh=(W, H))
    else:
        xyxy, _, names = vlm.from_qwen_2_5_vl(text, input_wh=(W, H), resolution_wh=(W, H))
    ours = parse_answer(text, prompt_preset=preset, width=W, height=H)
    assert [o.label for o in ours.objects] == list(names)
    for o, ref in zip(ours.objects, xyxy, strict=True):
        clipped = [min(max(v, 0), s - 1) for v, s in zip(ref, (W, H, W, H), strict=True)]
        assert all(abs(a - b) <= 1 for a, b in zip(o.xyxy(), clipped, strict=True))


# --------------------------------------------------------------- confidence from the trace


def _tokenize(text: str) -> list[str]:
    """A stand-in tokenizer: digits one by one, tags whole, other runs whole."""
    return re.findall(r"<[^<>]*>|\d|[A-Za-z]+|\s+|[^A-Za-z\d\s<]", text)


DIALECT_ANSWERS = {
    "qwen25_pixel": '[{"bbox_2d": [10, 20, 300, 400], "label": "cat"}, '
    '{"bbox_2d": [50, 60, 90, 100], "label": "dog"}]',
    "qwen3_rel1000": QWEN3,
    "gemma3_box2d": '[{"box_2d": [10, 20, 300, 400], "label": "cat"}, '
    '{"box_2d": [50, 60, 90, 100], "label": "dog"}]',
    "internvl_box": "<ref>cat</ref><box>[[10, 20, 300, 400]]</box><ref>dog</ref>"
    "<box>[[50, 60, 90, 100]]</box>",
    "paligemma_loc": "<loc0010><loc0020><loc0300><loc0400> cat ; "
    "<loc0050><loc0060><loc0090><loc0100> dog",
    "florence2_od": "cat<loc_10><loc_20><loc_300><loc_400>dog<loc_50><loc_60><loc_90><loc_100>",
}


@pytest.mark.parametrize("preset", sorted(DIALECT_ANSWERS))
def test_confidence_from_replayed_trace(preset):
    text = DIALECT_ANSWERS[preset]
    parsed = parse_answer(text, prompt_preset=preset, width=W, height=H)
    assert len(parsed.objects) == 2
    tokens = _tokenize(text)
    assert "".join(tokens) == text
    # a distinct logprob per token, so every object's mean is its own
    lps = [-0.01 * (i + 1) for i in range(len(tokens))]
    record = {"raw_text": text, "pred": parsed.pred}
    line = confidence_for_record(record, 0, tokens, lps, ConfidenceOptions())
    scores = [o["score"] for o in line["objects"]]
    assert all(0 < s <= 1 for s in scores) and scores[0] != scores[1]
    # oracle: the tokens inside the coordinate and label spans, found independently
    for obj, result in zip(parsed.pred, line["objects"], strict=True):
        pos, idx = 0, []
        for i, t in enumerate(tokens):
            if any(s < pos + len(t) and pos < e for s, e in obj["text_spans"]):
                idx.append(i)
            pos += len(t)
        assert any(tokens[i] == obj["desc"] for i in idx)  # the label is scored
        assert sum(tokens[i].isdigit() or tokens[i].startswith("<loc") for i in idx) >= 4
        assert math.isclose(result["score"], math.exp(sum(lps[i] for i in idx) / len(idx)))


# ------------------------------------------------- CoordJSON range: repair path == JSON path


@pytest.mark.parametrize(("surface", "value"), [("pixel", 1100), ("rel1000", 1000)])
def test_large_values_read_the_same_on_repair_and_valid_json_paths(surface, value):
    from coordbench.parse.output import parse_output

    rec = f'{{"desc": "a", "bbox_2d": [1, 2, {value}, 300]}}, '
    rec += '{"desc": "b", "bbox_2d": [1, 2, 30, 40]}'
    valid = parse_output('{"objects": [' + rec + "]}", surface=surface, width=W, height=H)
    repair = parse_output('{"objects": [' + rec + ",]}", surface=surface, width=W, height=H)
    # pixel 1100 lies past the image: clamped as upstream, and said (round 3); rel1000 1000 is
    # the right edge
    past = surface == "pixel"
    assert valid.status is (ParseStatus.SALVAGED if past else ParseStatus.OK)
    assert valid.issues == (("out_of_frame",) if past else ())
    assert boxes(repair) == boxes(valid) and len(valid.objects) == 2


@pytest.mark.parametrize("value", ["true", "false"])
def test_booleans_are_not_coordinates_in_coordjson(value):
    from coordbench.parse.output import parse_output

    text = f'{{"objects": [{{"desc": "a", "bbox_2d": [{value}, 2, 500, 300]}}]}}'
    p = parse_output(text, surface="norm1000", width=W, height=H)
    assert p.objects == () and p.issues == ("coord_parse",)


def test_internvl_ref_with_words_between_and_carried_label():
    text = (
        "<ref>cat</ref> is here: <box>[[100, 200, 500, 800]]</box> and <box>[[0, 0, 10, 10]]</box>"
    )
    p = parse_answer(text, prompt_preset="internvl_box", width=1000, height=1000)
    assert [b[0] for b in boxes(p)] == ["cat", "cat"]


@pytest.mark.parametrize(
    "text",
    [
        "<loc0256><loc0128><loc0768><loc0512> cat ; <loc0010><loc0020><loc0900><loc1000> dog",
        "<loc0000><loc0000><loc1023><loc1023> person",
        "<loc0100><loc0200><loc0300><loc0400> traffic light ; <loc0500><loc0600><loc0700>"
        "<loc0800> fire-hydrant",
    ],
)
def test_paligemma_agrees_with_supervision(text):
    vlm = _supervision()
    xyxy, _, names = vlm.from_paligemma(text, resolution_wh=(W, H))
    ours = parse_answer(text, prompt_preset="paligemma_loc", width=W, height=H)
    assert [o.label for o in ours.objects] == [str(n) for n in names]
    for o, ref in zip(ours.objects, xyxy, strict=True):
        clipped = [min(max(v, 0), s - 1) for v, s in zip(ref, (W, H, W, H), strict=True)]
        assert all(abs(a - b) <= 1 for a, b in zip(o.xyxy(), clipped, strict=True))


@pytest.mark.parametrize(
    "text",
    [
        '```json\n[{"box_2d": [100, 200, 500, 800], "label": "cat"},'
        ' {"box_2d": [0, 0, 1000, 1000], "label": "table"}]\n```',
        'Sure:\n```json\n[\n  {"box_2d": [10, 20, 30, 40], "label": "cup"}\n]\n```\n',
    ],
)
def test_gemma3_agrees_with_supervision_gemini(text):
    vlm = _supervision()
    xyxy, _, names = vlm.from_google_gemini_2_0(text, resolution_wh=(W, H))
    ours = parse_answer(text, prompt_preset="gemma3_box2d", width=W, height=H)
    assert [o.label for o in ours.objects] == [str(n) for n in names]
    for o, ref in zip(ours.objects, xyxy, strict=True):
        clipped = [min(max(v, 0), s - 1) for v, s in zip(ref, (W, H, W, H), strict=True)]
        assert all(abs(a - b) <= 1 for a, b in zip(o.xyxy(), clipped, strict=True))


def test_florence2_pads_are_not_labels():
    text = "</s><s>car<loc_52><loc_333><loc_932><loc_774></s><pad><pad>"
    p = parse_answer(text, prompt_preset="florence2_od", width=1000, height=1000)
    assert p.status is ParseStatus.OK and [b[0] for b in boxes(p)] == ["car"]


def test_coordjson_confidence_ignores_a_think_drafts_tokens():
    from coordbench.config.prompts import PromptPreset
    from coordbench.parse.answer import parse_for_preset

    coords = ", ".join(f"<|coord_{k}|>" for k in (100, 200, 300, 400))
    answer = '{"objects": [{"desc": "cat", "bbox_2d": [' + coords + "]}]}"
    draft = "<think>" + answer + "</think>"
    tokens = _tokenize(draft + answer)
    n_draft = len(_tokenize(draft))
    lps = [-5.0] * n_draft + [-0.1] * (len(tokens) - n_draft)  # the draft is much less sure
    parsed = parse_for_preset(draft + answer, PromptPreset("p"), width=W, height=H)
    assert parsed.reasoning_text == answer and len(parsed.objects) == 1
    record = {
        "raw_text": draft + answer,
        "width": W,
        "height": H,
        "mode": "coord",
        "pred_coord_mode": "auto",
        **parsed.upstream_fields(),
        **parsed.status_fields(),
    }
    line = confidence_for_record(record, 0, tokens, lps, ConfidenceOptions())
    result = line["objects"][0]
    assert min(result["confidence_details"]["matched_token_indices"]) >= n_draft
    assert math.isclose(result["score_geom"], math.exp(-0.1))


_N = 300_000
HOSTILE = {
    "long_desc": '{"objects": [{"desc": "' + "x" * _N + '", "bbox_2d": [1, 2, 30, 40]}]}',
    "prose": "x" * _N,
    "open_boxes": "<box>" * (_N // 5),
    "open_refs": "<ref>" * (_N // 5) + "<box>[[1, 2, 3, 4]]</box>",
    "open_bracket_spaces": "<box>[" + " " * _N + "x</box>",
    "loc_then_prose": "<loc_1>" + "y" * _N,
    "prose_then_open_loc": "y" * _N + "<loc_",
    "paligemma_locs": "<loc0001>" * (_N // 9),
    "nested_brackets": "[" * (_N // 2) + "]" * (_N // 2),
}


@pytest.mark.parametrize("preset", [*sorted(DIALECT_ANSWERS), "default_desc_first"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_long_answers_parse_in_linear_time(preset, case):
    """A 300 000-character answer must not stall a run: a lazy or backtracking regex that
    rescans the rest of the text from every position took minutes here (florence2_od)."""
    import time

    t0 = time.perf_counter()
    out = parse_answer(HOSTILE[case], prompt_preset=preset, width=640, height=480)
    assert time.perf_counter() - t0 < 3.0, (preset, case)
    for o in out.objects:
        x0, y0, x1, y1 = o.xyxy()
        assert 0 <= x0 <= x1 <= 640 and 0 <= y0 <= y1 <= 480


@pytest.mark.parametrize("k", [1000, 1500, 9999])
def test_a_coord_token_above_999_drops_its_object_as_coord_range(k):
    from coordbench.parse.output import parse_output

    text = (
        f'{{"objects": [{{"desc": "a", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_{k}|>, '
        '<|coord_400|>]}, {"desc": "b", "bbox_2d": [<|coord_5|>, <|coord_6|>, <|coord_700|>, '
        "<|coord_800|>]}]}"
    )
    p = parse_output(text, surface="coord_tokens", width=640, height=480)
    assert p.status.value == "salvaged" and p.issues == ("coord_range",)
    assert [o.label for o in p.objects] == ["b"]
