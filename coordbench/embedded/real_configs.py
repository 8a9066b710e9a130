"""Published Qwen-VL configurations with the layer counts cut to 2, for real-width tests.

Toy widths hide bugs that only real shapes show (head_dim 128 mRoPE sections, GQA ratios, window
attention layouts, deepstack, untied heads). Each entry holds the published `config.json` values
of that checkpoint (text and vision towers, layer counts included); `real_overrides` cuts
`num_hidden_layers` / `depth` to 2 for tests, and the layer-index lists that point into the cut
towers (Qwen2.5-VL's full-attention blocks, Qwen3-VL's deepstack layers) with them. The
vocabulary is the offline truncated tokenizer's (~5 k ids), so even the 4096-wide towers stay
small. `build_real(name)` / `save_real(name, dir)` build a random-weight checkpoint through
`tiny_families`.
"""

from __future__ import annotations

from pathlib import Path

from coordbench.embedded.tiny_families import build_tiny, save_tiny

CUT_LAYERS = 2
# BPE ranks kept: 4096 tokenises the default prompt in ~840 tokens (512: ~1350), which is what
# CPU prefill time scales with, for a 5 k vocabulary (21 M embedding weights at 4096 wide).
N_RANKS = 4096

# name: (family, text tower, vision tower): the published config.json values.
REAL_CONFIGS: dict[str, tuple[str, dict, dict]] = {
    "Qwen2-VL-2B": (
        "qwen2_vl",
        dict(
            num_hidden_layers=28,
            hidden_size=1536,
            num_attention_heads=12,
            num_key_value_heads=2,
            intermediate_size=8960,
            head_dim=128,  # derived by Qwen2-VL (1536 / 12); sets the mRoPE sections' sum
            rope_theta=1e6,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=True,
        ),
        dict(
            depth=32,
            hidden_size=1280,
            num_heads=16,
            mlp_ratio=4,
            patch_size=14,
            spatial_merge_size=2,
        ),
    ),
    "Qwen2.5-VL-3B": (
        "qwen2_5_vl",
        dict(
            num_hidden_layers=36,
            hidden_size=2048,
            num_attention_heads=16,
            num_key_value_heads=2,
            intermediate_size=11008,
            head_dim=128,
            rope_theta=1e6,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=True,
        ),
        dict(
            depth=32,
            hidden_size=1280,
            num_heads=16,
            intermediate_size=3420,
            patch_size=14,
            spatial_merge_size=2,
            window_size=112,
            fullatt_block_indexes=[7, 15, 23, 31],  # every 8th block attends globally
        ),
    ),
    "Qwen2.5-VL-7B": (
        "qwen2_5_vl",
        dict(
            num_hidden_layers=28,
            hidden_size=3584,
            num_attention_heads=28,
            num_key_value_heads=4,
            intermediate_size=18944,
            head_dim=128,
            rope_theta=1e6,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=False,
        ),
        dict(
            depth=32,
            hidden_size=1280,
            num_heads=16,
            intermediate_size=3420,
            patch_size=14,
            spatial_merge_size=2,
            window_size=112,
            fullatt_block_indexes=[7, 15, 23, 31],
        ),
    ),
    "Qwen3-VL-2B": (
        "qwen3_vl",
        dict(
            num_hidden_layers=28,
            hidden_size=2048,
            num_attention_heads=16,
            num_key_value_heads=8,
            intermediate_size=6144,
            head_dim=128,
            rope_theta=5e6,
            mrope_section=[24, 20, 20],
            tie_word_embeddings=True,
        ),
        dict(
            depth=24,
            hidden_size=1024,
            num_heads=16,
            intermediate_size=4096,
            patch_size=16,
            spatial_merge_size=2,
            num_position_embeddings=2304,
            deepstack_visual_indexes=[5, 11, 17],
        ),
    ),
    "Qwen3-VL-4B": (
        "qwen3_vl",
        dict(
            num_hidden_layers=36,
            hidden_size=2560,
            num_attention_heads=32,
            num_key_value_heads=8,
            intermediate_size=9728,
            head_dim=128,
            rope_theta=5e6,
            mrope_section=[24, 20, 20],
            tie_word_embeddings=True,
        ),
        dict(
            depth=24,
            hidden_size=1024,
            num_heads=16,
            intermediate_size=4096,
            patch_size=16,
            spatial_merge_size=2,
            num_position_embeddings=2304,
            deepstack_visual_indexes=[5, 11, 17],
        ),
    ),
    "Qwen3-VL-8B": (
        "qwen3_vl",
        dict(
            num_hidden_layers=36,
            hidden_size=4096,
            num_attention_heads=32,
            num_key_value_heads=8,
            intermediate_size=12288,
            head_dim=128,
            rope_theta=5e6,
            mrope_section=[24, 20, 20],
            tie_word_embeddings=False,
        ),
        dict(
            depth=27,
            hidden_size=1152,
            num_heads=16,
            intermediate_size=4304,
            patch_size=16,
            spatial_merge_size=2,
            num_position_embeddings=2304,
            deepstack_visual_indexes=[8, 16, 24],
        ),
    ),
}
# Random weights at the hub's 0.02 init make greedy decoding echo one token; 0.2 varies it.
_INIT = dict(initializer_range=0.2)


def _cut_indexes(published: list[int], layers: int, fallback: list[int]) -> list[int]:
    """The published layer indexes that still exist in a `layers`-deep tower, else `fallback`."""
    return [i for i in published if i < layers] or fallback


def real_overrides(name: str, layers: int | None = CUT_LAYERS) -> tuple[str, dict, dict]:
    """(family, text overrides, vision overrides) of a published config; `layers` cuts both
    towers to that many layers (None = the published depths, real size)."""
    if name not in REAL_CONFIGS:
        raise ValueError(f"expected `name` to be one of {sorted(REAL_CONFIGS)} but got {name!r}")
    family, text, vision = REAL_CONFIGS[name]
    text, vision = {**text, **_INIT}, dict(vision)
    if layers is None:
        return family, text, vision
    text["num_hidden_layers"], vision["depth"] = layers, layers
    if "fullatt_block_indexes" in vision:  # keep the last block global, as published
        vision["fullatt_block_indexes"] = _cut_indexes(
            vision["fullatt_block_indexes"], layers, [layers - 1]
        )
    if "deepstack_visual_indexes" in vision:  # one deepstack feature per kept layer
        n = min(len(vision["deepstack_visual_indexes"]), layers)
        vision["deepstack_visual_indexes"] = _cut_indexes(
            vision["deepstack_visual_indexes"], layers, list(range(n))
        )
    return family, text, vision


def build_real(name: str, seed: int = 0, layers: int | None = CUT_LAYERS, n_ranks: int = N_RANKS):
    """(model, tokenizer, image_processor) of a published config, random fp32 weights."""
    family, text, vision = real_overrides(name, layers)
    return build_tiny(family, seed, n_ranks, text=text, vision=vision)


def save_real(
    name: str,
    out_dir: str | Path,
    seed: int = 0,
    layers: int | None = CUT_LAYERS,
    n_ranks: int = N_RANKS,
) -> Path:
    """Save a random-weight checkpoint of a published config (hub layout) under `out_dir`."""
    family, text, vision = real_overrides(name, layers)
    return save_tiny(family, out_dir, seed, n_ranks, text=text, vision=vision)
