"""Tiny random Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoints, built at test time (seeded, < 1 s).

They exercise the same `from_pretrained` path as real checkpoints, with real Qwen-style configs and
the offline truncated Qwen tokenizer. Every family uses a 16-px patch with 2x2 merge (a 32-px grid,
as Qwen3-VL), so preset images (multiples of 32) pass through the processor unchanged; Qwen2-VL and
Qwen2.5-VL ship 14-px patches on the hub, which `vision={"patch_size": 14}` reproduces.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from coordbench.embedded.build import MAX_PIXELS, MIN_PIXELS, save_checkpoint
from coordbench.embedded.tokenizer import build_tokenizer

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
PROCESSOR_CLASS = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
}
# Text towers: hidden 64, 2 layers, head_dim 16 -> mrope sections sum to head_dim / 2 = 8
# ([ARCH-TINY-MODELS]; Qwen3-VL interleaves its sections). initializer_range 0.2 rather than the
# hub's 0.02: with tied embeddings a 0.02 init makes greedy decoding echo the last prompt token
# forever, while 0.2 gives varied, input-dependent tokens that batch-invariance tests can compare.
TEXT = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    head_dim=16,
    initializer_range=0.2,
)
VISION = dict(
    depth=2,
    hidden_size=32,
    num_heads=2,
    intermediate_size=64,
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
)


def _text_config(family: str, vocab_size: int, tok, text: dict) -> dict:
    ids = tok.convert_tokens_to_ids
    rope = {
        "rope_type": "default",
        "rope_theta": text.get("rope_theta", 1e6),
        "mrope_section": text.get("mrope_section")
        or ([4, 2, 2] if family == "qwen3_vl" else [2, 3, 3]),
    }
    if family == "qwen3_vl":
        rope["mrope_interleaved"] = True
    cfg = {
        "vocab_size": vocab_size,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_parameters": rope,
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
        **{
            k: text[k]
            for k in (
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "intermediate_size",
                "initializer_range",
            )
        },
    }
    if family != "qwen2_vl":  # Qwen2-VL derives head_dim from hidden / heads
        cfg["head_dim"] = text["head_dim"]
    return cfg


def _vision_config(family: str, hidden: int, v: dict) -> dict:
    common = {
        k: v[k]
        for k in ("depth", "num_heads", "patch_size", "spatial_merge_size", "temporal_patch_size")
    }
    common["in_channels"] = 3
    if family == "qwen2_vl":  # embed_dim = vision width, hidden_size = merger output
        mlp_ratio = v.get("mlp_ratio", 2)
        return {
            **common,
            "embed_dim": v["hidden_size"],
            "hidden_size": hidden,
            "mlp_ratio": mlp_ratio,
        }
    out = {
        **common,
        "hidden_size": v["hidden_size"],
        "intermediate_size": v["intermediate_size"],
        "out_hidden_size": hidden,
    }
    if family == "qwen2_5_vl":
        return {
            **out,
            "window_size": v.get("window_size", 64),
            "fullatt_block_indexes": v.get("fullatt_block_indexes", [v["depth"] - 1]),
        }
    # Qwen3-VL: learned position table of 12x12 patches (interpolated), deepstack after layer 0.
    return {
        **out,
        "num_position_embeddings": v.get("num_position_embeddings", 144),
        "deepstack_visual_indexes": v.get("deepstack_visual_indexes", [0]),
    }


def tiny_config(
    family: str, tok, vocab_size: int, text: dict | None = None, vision: dict | None = None
):
    """A transformers config of the given family with tiny towers and the tokenizer's
    special ids."""
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"expected `family` to be one of {FAMILIES} but got {family!r}")
    t, v = {**TEXT, **(text or {})}, {**VISION, **(vision or {})}
    cls = {
        "qwen2_vl": transformers.Qwen2VLConfig,
        "qwen2_5_vl": transformers.Qwen2_5_VLConfig,
        "qwen3_vl": transformers.Qwen3VLConfig,
    }[family]
    ids = tok.convert_tokens_to_ids
    cfg = cls(
        text_config=_text_config(family, vocab_size, tok, t),
        vision_config=_vision_config(family, t["hidden_size"], v),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=t.get("tie_word_embeddings", True),
    )
    cfg.initializer_range = t["initializer_range"]  # read by `_init_weights` of the composite model
    return cfg


def tiny_image_processor(patch_size: int = 16, merge_size: int = 2):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    return Qwen2VLImageProcessorPil(
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=2,
        size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
    )


def build_tiny(
    family: str,
    seed: int = 0,
    n_ranks: int = 512,
    text: dict | None = None,
    vision: dict | None = None,
):
    """(model, tokenizer, image_processor) of `family` with random fp32 weights seeded by `seed`."""
    import torch
    import transformers

    tok = build_tokenizer(n_ranks)
    cfg = tiny_config(family, tok, 64 * math.ceil(len(tok) / 64), text, vision)
    cls = {
        "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
    }[family]
    torch.manual_seed(seed)
    model = cls._from_config(cfg, dtype=torch.float32)
    v = {**VISION, **(vision or {})}
    return model, tok, tiny_image_processor(v["patch_size"], v["spatial_merge_size"])


def save_tiny(
    family: str,
    out_dir: str | Path,
    seed: int = 0,
    n_ranks: int = 512,
    layout: str = "preprocessor",
    **overrides,
) -> Path:
    """Build and save a tiny checkpoint in the hub layout.

    `layout="processor"` writes the transformers-5 `processor_config.json` (image processor nested
    under "image_processor") instead of the legacy `preprocessor_config.json`.
    """
    if layout not in ("preprocessor", "processor"):
        raise ValueError(
            f"expected `layout` to be 'preprocessor' or 'processor' but got {layout!r}"
        )
    model, tok, improc = build_tiny(family, seed, n_ranks, **overrides)
    out = save_checkpoint(model, tok, improc, out_dir)
    legacy = out / "preprocessor_config.json"
    improc_cfg = json.loads(legacy.read_text())
    improc_cfg["processor_class"] = PROCESSOR_CLASS[family]
    if layout == "processor":
        legacy.unlink()
        nested = {"image_processor": improc_cfg, "processor_class": PROCESSOR_CLASS[family]}
        (out / "processor_config.json").write_text(json.dumps(nested, indent=2))
    else:
        legacy.write_text(json.dumps(improc_cfg, indent=2))
    return out
