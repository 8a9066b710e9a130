"""Published Qwen-VL configurations (real widths, 2 layers, random weights) run end to end through
the HF backend: catches what works only at toy widths (head_dim 128 mRoPE, GQA ratios, 14-px
patches, window attention, deepstack, untied heads)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from coordbench.config.run import RunConfig
from coordbench.embedded.real_configs import REAL_CONFIGS, real_overrides, save_real
from coordbench.rundir.jsonl import read_records

torch = pytest.importorskip("torch")

SIDE = 224  # on both the 28-px (14-px patch) and the 32-px (16-px patch) grids; 32-px preset


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    lines = []
    for i in range(2):
        pix = (np.random.RandomState(i).rand(SIDE, SIDE, 3) * 255).astype("uint8")
        Image.fromarray(pix).save(root / "images" / f"{i}.png")
        obj = {"bbox_2d": ["<|coord_100|>", "<|coord_200|>", "<|coord_600|>", "<|coord_700|>"]}
        lines.append(
            {
                "images": [f"images/{i}.png"],
                "width": SIDE,
                "height": SIDE,
                "objects": [{**obj, "desc": "person"}],
                "image_id": i,
            }
        )
    path = root / "val.coord.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_cut_keeps_published_widths_and_layouts():
    family, text, vision = real_overrides("Qwen2.5-VL-7B")
    assert (family, text["hidden_size"], text["num_key_value_heads"]) == ("qwen2_5_vl", 3584, 4)
    assert (text["num_hidden_layers"], vision["depth"]) == (2, 2)
    assert vision["fullatt_block_indexes"] == [1]  # published [7, 15, 23, 31]: last kept global
    assert real_overrides("Qwen3-VL-8B")[2]["deepstack_visual_indexes"] == [0, 1]
    full = real_overrides("Qwen3-VL-8B", layers=None)[2]
    assert (full["depth"], full["deepstack_visual_indexes"]) == (27, [8, 16, 24])
    for _, text, _ in REAL_CONFIGS.values():  # mRoPE sections cover half the head dim
        assert sum(text["mrope_section"]) == text["head_dim"] // 2


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REAL_CONFIGS))
def test_real_config_runs_end_to_end(name, data, tmp_path):
    from coordbench.pipeline.run import run

    ckpt = save_real(name, tmp_path / name, seed=1)
    family, text, vision = real_overrides(name)
    cfg = json.loads((ckpt / "config.json").read_text())
    tc, vc = cfg["text_config"], cfg["vision_config"]
    assert tc["hidden_size"] == text["hidden_size"]
    assert tc["num_attention_heads"] == text["num_attention_heads"]
    assert tc["rope_parameters"]["mrope_section"] == text["mrope_section"]
    assert vc["patch_size"] == vision["patch_size"]
    assert vc.get("hidden_size" if family != "qwen2_vl" else "embed_dim") == vision["hidden_size"]
    out = tmp_path / "runs"
    summary = run(
        RunConfig(
            ckpt=str(ckpt),
            data=str(data),
            preset="768",
            prompt="default_desc_first",  # the shortest prompt: CPU time is prefill
            limit=2,
            max_new_tokens=8,
            batch_size=2,
            out=str(out),
            name="r",
            device="cpu",
            progress=False,
        )
    )
    assert summary
    traces, _ = read_records(out / "r" / "pred_token_trace.jsonl")
    assert len(traces) == 2
    for t in traces:
        assert 1 <= len(t["token_ids"]) <= 8
        assert all(np.isfinite(t["token_logprobs_raw"]))
        assert t["n_prompt_tokens"] > (SIDE // (2 * vision["patch_size"])) ** 2  # image tokens
