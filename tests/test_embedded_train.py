"""The committed training recipe of the embedded model: its helpers and a two-step smoke run.

The shipped weights come from this script, so it must keep running and keep producing a
checkpoint that the normal loading path accepts.
"""

from __future__ import annotations

import json

import pytest
import torch

from scripts import train_embedded as train


@pytest.fixture(scope="module")
def tiny():
    model, tok, improc = train.build_tiny_model(seed=0)
    return model, tok, improc


def test_desc_weight_hits_exactly_the_class_name_tokens(tiny):
    _, tok, improc = tiny
    b = train.Batcher(tok, improc, seed=0)
    b.desc_weight = 4.0
    name = train.CLASS_NAMES[0]
    pre = tok('[{"desc": "', add_special_tokens=False)["input_ids"]
    mid = tok(name, add_special_tokens=False)["input_ids"]
    post = tok('", "bbox_2d": [1, 2, 3, 4]}]', add_special_tokens=False)["input_ids"]
    w = b.token_weights(pre + mid + post)
    assert w == [1.0] * len(pre) + [4.0] * len(mid) + [1.0] * len(post)
    b.desc_weight = 1.0
    assert set(b.token_weights(pre + mid + post)) == {1.0}


def test_coord_jitter_moves_only_input_coords_and_keeps_targets_exact(tiny):
    _, tok, improc = tiny
    b = train.Batcher(tok, improc, seed=0)
    plain = b.batch([0, 1, 2, 3])
    b.coord_jitter, b.jitter_prob = 6, 0.5
    x = b.batch([0, 1, 2, 3])
    assert torch.equal(x["labels"], plain["labels"])  # targets untouched
    ans = x["labels"] != -100
    moved = ans & (x["ids"] != x["labels"])
    assert moved.sum() > 0 and torch.equal(x["ids"][~ans], plain["ids"][~ans])
    lab, got = x["labels"][moved], x["ids"][moved]
    lo = b.coord_lo
    assert bool(((lab >= lo) & (lab < lo + 1000) & (got >= lo) & (got < lo + 1000)).all())
    assert int((got - lab).abs().max()) <= 6
    v = b.batch([0, 1], split="val")  # validation reads its targets exactly
    vans = v["labels"] != -100
    assert torch.equal(v["ids"][vans], v["labels"][vans])


def test_aux_targets_mark_cells_inside_a_box_with_its_class():
    # one 64x64 image, a 4x4 grid of 16-px cells; object class 2 covers cells (1..2, 1..2)
    obj, box, cls = train.aux_targets([[[16, 16, 47, 47]]], [[2]], 4, 4, (64, 64))
    inside = {r * 4 + c for r in (1, 2) for c in (1, 2)}
    assert {i for i in range(16) if obj[0, i] == 1} == inside
    assert {i for i in range(16) if cls[0, i] == 2} == inside
    assert int((cls[0] == 0).sum()) == 12
    i = 1 * 4 + 1
    expect = torch.tensor([16 / 63, 16 / 63, 47 / 63, 47 / 63]) * 2 - 1
    assert torch.allclose(box[0, i], expect)


@pytest.mark.slow
def test_two_training_steps_save_a_loadable_checkpoint_and_continue(tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = tmp_path / "p1"
    args = ["--out", str(out), "--max-steps", "2", "--batch-size", "2", "--save-every", "1000"]
    train.main(args)
    for f in ("model.safetensors", "config.json", "tokenizer.json", train.AUX_HEAD_FILE):
        assert (out / f).exists(), f
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]  # the final step is logged too
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    Qwen2_5_VLForConditionalGeneration.from_pretrained(out)

    # a second phase continues the step count and the learning curve
    out2 = tmp_path / "p2"
    train.main(
        [
            "--init-from",
            str(out),
            "--out",
            str(out2),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--save-every",
            "1000",
        ]
    )
    log2 = [json.loads(x) for x in (out2 / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log2] == [1, 2, 3]
