"""Round-three answers: lone closing fences, PaliGemma segment labels, stop tokens as empty,
out-of-frame values, one bad box among good ones, reversed corners, refusals. Each case
failed before its fix; the peers' expectations come from their own parsers (the Qwen cookbooks'
fence handling, big_vision's extract_objs, supervision)."""

from __future__ import annotations

import pytest

from coordbench import parse_answer

BOXES = (
    '[{"bbox_2d": [10, 20, 110, 220], "label": "dog"}, '
    '{"bbox_2d": [300, 40, 400, 90], "label": "cat"}]'
)


def _p(text, preset, w=644, h=480):
    return parse_answer(text, prompt_preset=preset, width=w, height=h)


@pytest.mark.parametrize("preset", ["qwen25_pixel", "qwen3_rel1000"])
@pytest.mark.parametrize(
    "text",
    [BOXES + "\n```", BOXES + "\n```\nHope this helps!", "Here you go:\n" + BOXES + "\n```"],
)
def test_a_closing_fence_without_an_opening_one_keeps_every_box(text, preset):
    out = _p(text, preset)
    assert [o.label for o in out.objects] == ["dog", "cat"]
    assert out.status.value in ("ok", "salvaged")


def test_gemma3_lone_fence():
    text = '[{"box_2d": [20, 10, 220, 110], "label": "dog"}]\n```'
    out = _p(text, "gemma3_box2d")
    assert [o.label for o in out.objects] == ["dog"] and out.status.value != "malformed"


def test_paligemma_segment_tokens_keep_the_label():
    seg = "".join(f"<seg{i:03d}>" for i in range(16))
    out = _p(
        f"<loc0100><loc0200><loc0500><loc0600>{seg} cat ; <loc0000><loc0000><loc0100><loc0100> dog",
        "paligemma_loc",
        1024,
        1024,
    )
    assert [o.label for o in out.objects] == ["cat", "dog"]


@pytest.mark.parametrize(
    "preset,text",
    [
        ("florence2_od", "</s>"),
        ("florence2_od", "</s><s></s>"),
        ("paligemma_loc", "<eos>"),
        ("gemma3_box2d", "<end_of_turn>"),
        ("qwen25_pixel", "<|im_end|>"),
    ],
)
def test_an_answer_of_stop_tokens_only_is_empty(preset, text):
    out = _p(text, preset)
    assert out.status.value == "empty" and not out.objects


@pytest.mark.parametrize(
    "preset,text,w",
    [
        ("qwen25_pixel", '[{"bbox_2d": [10, 20, 650, 220], "label": "dog"}]', 644),
        ("qwen3_rel1000", '[{"bbox_2d": [10, 20, 1001, 220], "label": "dog"}]', 644),
        ("qwen3_rel1000", '[{"bbox_2d": [-3, 20, 500, 220], "label": "dog"}]', 644),
    ],
)
def test_out_of_frame_values_are_clamped_and_said(preset, text, w):
    out = _p(text, preset, w)
    assert len(out.objects) == 1
    assert out.status.value == "salvaged" and "out_of_frame" in out.issues
    x1, _, x2, _ = out.objects[0].xyxy()
    assert 0 <= x1 <= x2 <= w - 1


def test_in_frame_edges_are_not_out_of_frame():
    out = _p('[{"bbox_2d": [0, 0, 1000, 1000], "label": "dog"}]', "qwen3_rel1000")
    assert out.status.value == "ok" and "out_of_frame" not in out.issues


@pytest.mark.parametrize(
    "preset,text,n",
    [
        (
            "qwen25_pixel",
            '[{"bbox_2d": [1, 2, 3, 4, 5], "label": "a"}, '
            '{"bbox_2d": [10, 20, 110, 220], "label": "dog"}]',
            1,
        ),
        (
            "florence2_od",
            "dog<loc_10><loc_20><loc_300><loc_400><loc_1><loc_2>cat<loc_500><loc_500><loc_600><loc_600>",
            2,
        ),
    ],
)
def test_one_bad_box_beside_good_ones_is_salvaged_not_malformed(preset, text, n):
    out = _p(text, preset)
    assert len(out.objects) == n
    assert out.status.value == "salvaged"
    assert "bad_coordinates" in out.issues


def test_reversed_corners_native_kept_and_counted_coordjson_dropped():
    native = _p('[{"bbox_2d": [110, 220, 10, 20], "label": "dog"}]', "qwen25_pixel")
    assert len(native.objects) == 1 and "reversed_box" in native.issues
    assert native.status.value == "salvaged"
    cj = _p('{"objects": [{"desc": "dog", "bbox_2d": [500, 600, 100, 200]}]}', "coco80_norm1000")
    assert not cj.objects and "reversed_box" in cj.issues  # upstream parity: dropped


@pytest.mark.parametrize(
    "text",
    [
        "I don't see any cars in this image.",
        "There are no dogs.",
        "There is no person in the picture.",
        "No cats found.",
        "None.",
        "图中没有猫。",
        "未检测到任何物体",
        "图片里找不到汽车",
    ],
)
@pytest.mark.parametrize("preset", ["qwen25_pixel", "internvl_box", "coco80_desc_first"])
def test_refusals_are_empty(text, preset):
    out = _p(text, preset)
    assert out.status.value == "empty" and not out.objects


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here are the objects.",
        "The dog is at the top left, near (10, 20).",
        "Sorry, I cannot help with that request because of formatting [1].",
        "一只狗在左上角",
    ],
)
def test_answers_that_do_not_say_nothing_is_there_stay_malformed(text):
    assert _p(text, "qwen25_pixel").status.value == "malformed"


def test_summary_counts_out_of_frame_and_reversed_box():
    from coordbench.metrics.summary import build_summary

    class R:
        metrics: dict = {}
        calibration = None
        diagnostics = None

    head = {
        "identity_hash": "h",
        "identity": {
            "prompt": {"surface": "pixel", "name": "p", "template_hash": "t", "layout": "x"},
            "backend": "hf",
            "checkpoint": {"sha256": "s"},
            "decode": {},
            "seed": 0,
            "preset": "64",
            "dataset": {"limit": None, "num_samples": 2},
        },
        "config": {},
    }
    recs = [
        {"parse_status": "salvaged", "parse_issues": ["out_of_frame", "reversed_box"]},
        {"parse_status": "salvaged", "parse_issues": ["out_of_frame"]},
    ]
    s = build_summary(head, recs, R(), headline=())
    assert s["parse"]["issues"] == {"out_of_frame": 2, "reversed_box": 1}


# ---------------------------------------------------------------- round three, second pass
# cases past the issue's own examples, each checked against the family's parser


def test_paligemma_whitespace_around_the_segment_run_keeps_the_label():
    # big_vision's extract_objs allows whitespace between the four locs, the 16 segs and the
    # label (`\s*` on both sides of the optional segment run): both read as "cat"
    seg = "".join(f"<seg{i:03d}>" for i in range(16))
    for text in (
        f"<loc0100><loc0200><loc0500><loc0600> {seg} cat",
        f"<loc0100><loc0200><loc0500><loc0600>{seg}  cat ; "
        "<loc0000><loc0000><loc0100><loc0100> dog",
    ):
        out = _p(text, "paligemma_loc", 1024, 1024)
        assert [o.label for o in out.objects] == ["cat", "dog"][: len(out.objects)]
        assert out.objects[0].label == "cat" and out.objects[0].xyxy() == [200, 100, 600, 500]


def test_florence2_bin_1000_is_out_of_frame_bin_999_is_not():
    # Florence-2's quantizer writes bins 0..999; its dequantizer maps k to (k + 0.5) * W / 1000,
    # so bin 1000 lies past the right edge (1000.5 / 1000 * 644 = 644.3) and is clamped to 643
    past = _p("dog<loc_10><loc_20><loc_300><loc_1000>", "florence2_od")
    assert past.status.value == "salvaged" and "out_of_frame" in past.issues
    assert past.objects[0].xyxy() == [7.0, 10.0, 194.0, 479.0]
    edge = _p("dog<loc_10><loc_20><loc_300><loc_999>", "florence2_od")
    assert edge.status.value == "ok" and edge.issues == ()


@pytest.mark.parametrize("text", ["</s>", "<eos>", "<end_of_turn>", "</s><s></s>", "<pad><eos>\n"])
@pytest.mark.parametrize("preset", ["coco80_norm1000", "default_desc_first"])
def test_coordjson_stop_tokens_of_any_family_are_empty(text, preset):
    out = _p(text, preset)
    assert out.status.value == "empty" and not out.objects


def test_coordjson_a_trailing_stop_token_is_not_junk_and_a_refusal_before_one_is_empty():
    body = '{"objects": [{"desc": "dog", "bbox_2d": [10, 20, 300, 400]}]}'
    for stop in ("<|im_end|>", "</s>", "<eos>", "<end_of_turn>"):
        out = _p(body + stop, "coco80_norm1000")
        assert out.status.value == "ok" and out.issues == (), stop
    assert _p("There are no dogs.<eos>", "coco80_norm1000").status.value == "empty"
    assert _p("There are no dogs.</s>", "qwen25_pixel").status.value == "empty"


def test_coordjson_text_values_past_the_frame_are_clamped_as_upstream_and_said():
    # norm1000 is 0..999 upstream: 1500 clamps to the last column exactly as before (pred is
    # upstream's), but the answer is salvaged with out_of_frame instead of a silent ok
    out = _p('{"objects": [{"desc": "dog", "bbox_2d": [10, 20, 1500, 400]}]}', "coco80_norm1000")
    assert out.pred[0]["points"] == [6, 10, 643, 192]
    assert out.status.value == "salvaged" and out.issues == ("out_of_frame",)
    inside = _p('{"objects": [{"desc": "dog", "bbox_2d": [0, 0, 999, 999]}]}', "coco80_norm1000")
    assert inside.status.value == "ok" and inside.issues == ()


@pytest.mark.parametrize("text", ["```json\n```", "```\n```", "```json\n\n```<|im_end|>"])
@pytest.mark.parametrize("preset", ["qwen25_pixel", "gemma3_box2d", "coco80_norm1000"])
def test_an_empty_fenced_block_is_empty(text, preset):
    # nothing inside the fence: nothing there (supervision reads no box and no error)
    assert _p(text, preset).status.value == "empty"


@pytest.mark.parametrize(
    "text",
    [
        "No cars.",
        "no car",
        "Nothing was detected.",
        "There are zero cars in the image.",
        "The car could not be found.",
        "The image contains no dogs.",
        "图片中不包含任何猫。",
        "未看到任何汽车",
        "图像中并未发现狗。",
        "I see no cars.",
        "No objects were found in the image.",
        "无。",
        "圖中沒有貓",  # traditional characters
        "未檢測到任何物體",
    ],
)
def test_more_refusals_are_empty(text):
    assert _p(text, "qwen25_pixel").status.value == "empty"


@pytest.mark.parametrize(
    "text",
    [
        # it says something *is* there: a format failure, not "nothing found"
        "I cannot see well but there is a car.",
        "There is no car, but there is a dog at the left.",
        "No cars, however I can see a truck.",
        # it says nothing about the objects: the image did not reach the model
        "I'm sorry, I can't see the image.",
        "I cannot view images.",
        "没有猫，但是有一只狗。",
        "抱歉，我看不到图片。",
        "我无法查看图片",
        "There are no cars, only trucks.",
        "沒有貓，但是有一隻狗",
        "我看不到圖片",
    ],
)
def test_negations_that_are_not_refusals_stay_malformed(text):
    assert _p(text, "qwen25_pixel").status.value == "malformed"


def test_every_backend_stop_token_is_a_control_token_of_the_parser():
    # the parser must know every token a backend may leave in the text: each family's stop
    # tokens (backends) and Florence-2's BART specials, alone, are an empty answer everywhere
    from coordbench.backends.hf_family import FAMILIES
    from coordbench.backends.vllm import STOP_TOKENS
    from coordbench.embedded.tiny_florence import BART_SPECIALS

    tokens = {t for fam in FAMILIES.values() for t in fam.stop_tokens}
    tokens |= set(STOP_TOKENS) | set(BART_SPECIALS) | {"<bos>", "<start_of_turn>"}
    assert {"</s>", "<eos>", "<end_of_turn>", "<|im_end|>"} <= tokens
    for preset in ("coco80_norm1000", "qwen25_pixel", "internvl_box", "florence2_od"):
        for tok in sorted(tokens):
            assert _p(tok + "\n" + tok, preset).status.value == "empty", (preset, tok)


FENCE_VARIANTS = [
    BOXES + "\n```",  # a pre-filled ```json turn: only the closing fence is generated
    BOXES + "```",
    BOXES + "\n```\nHope this helps!",
    "Here you go:\n" + BOXES + "\n```",
    "Sure.\n```\n" + BOXES + "\n```",
    "```JSON\n" + BOXES + "\n```\nDone.",
    BOXES + "\n```\n\nNote: the {dog} is at the left.",
    "```json\n```",
    "```\n```",
]


@pytest.mark.parametrize("text", FENCE_VARIANTS)
def test_fences_agree_with_supervision(text):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vlm = pytest.importorskip("supervision.detection.vlm")
    xyxy, _, names = vlm.from_qwen_2_5_vl(text, input_wh=(644, 480), resolution_wh=(644, 480))
    out = _p(text, "qwen25_pixel")
    assert [o.label for o in out.objects] == [str(n) for n in names]
    for o, ref in zip(out.objects, xyxy, strict=True):
        assert all(abs(a - b) <= 1 for a, b in zip(o.xyxy(), ref, strict=True))
    assert out.status.value == ("ok" if len(names) else "empty")
