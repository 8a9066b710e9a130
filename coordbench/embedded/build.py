"""Build tiny Qwen2.5-VL-architecture checkpoints offline
(config + weights + tokenizer + processor).

Used by the embedded-model training script and by tests that need a real `from_pretrained`
folder. The vision patch is 16 px with 2x2 merge, a 32-px grid: preset images (multiples of 32)
pass through the processor unchanged, as with Qwen3-VL checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path

from coordbench.embedded.tokenizer import COORD_TOKENS, build_tokenizer

TEXT = dict(
    hidden_size=192,
    num_hidden_layers=4,
    num_attention_heads=6,
    num_key_value_heads=2,
    intermediate_size=512,
    head_dim=32,
    mrope_section=[4, 6, 6],
)
VISION = dict(
    depth=3,
    hidden_size=128,
    num_heads=4,
    intermediate_size=256,
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=128,
    fullatt_block_indexes=[2],
)
# The processor must never resize a preset image: min 4 merged tokens, max far above any preset.
MIN_PIXELS, MAX_PIXELS = 32 * 32 * 4, 32 * 32 * 16384


def tiny_config(vocab_size: int, tok, text: dict | None = None, vision: dict | None = None):
    from transformers import Qwen2_5_VLConfig

    t = {**TEXT, **(text or {})}
    v = {**VISION, **(vision or {})}
    ids = tok.convert_tokens_to_ids
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": t["hidden_size"],
        "num_hidden_layers": t["num_hidden_layers"],
        "num_attention_heads": t["num_attention_heads"],
        "num_key_value_heads": t["num_key_value_heads"],
        "intermediate_size": t["intermediate_size"],
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": t["mrope_section"],
        },
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision_config = {**v, "out_hidden_size": t["hidden_size"], "in_channels": 3}
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def image_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    return Qwen2VLImageProcessorPil(
        patch_size=VISION["patch_size"],
        merge_size=VISION["spatial_merge_size"],
        temporal_patch_size=VISION["temporal_patch_size"],
        size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
    )


def init_coord_embeddings(model, tok, scale: float = 1.0) -> None:
    """Give the 1000 coord embeddings (tied with the LM head) a quadratic structure.

    With z = bin position in [-1, 1], embedding_k = scale * (z * u - z**2 * v) + noise for two
    fixed orthogonal directions u, v. A hidden state h then scores bin k with
    scale * (z_k * h.u - z_k**2 * h.v): a parabola peaking at z* = h.u / (2 h.v). Reading a
    position out becomes *linear* in h, so what is learned for bin k transfers to every bin
    (a random or one-hot-like init makes it a 1000-way lookup).
    """
    import torch

    emb = model.get_input_embeddings().weight
    d = emb.shape[1]
    g = torch.Generator().manual_seed(1234)
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g))
    u, v = basis[:, 0], basis[:, 1]
    ids = torch.tensor(tok.convert_tokens_to_ids(list(COORD_TOKENS)))
    z = torch.linspace(-1.0, 1.0, 1000)[:, None]
    typical = emb.detach()[: int(ids.min())].norm(dim=1).mean()
    with torch.no_grad():
        emb[ids] = typical * scale * (z * u - z**2 * v) + 0.3 * emb[ids]


def build_tiny_model(
    seed: int = 0, n_ranks: int = 4096, text: dict | None = None, vision: dict | None = None
):
    """(model, tokenizer, image_processor) with random, seeded weights (fp32)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    tok = build_tokenizer(n_ranks)
    vocab = 64 * math.ceil(len(tok) / 64)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration._from_config(
        tiny_config(vocab, tok, text, vision), dtype=torch.float32
    )
    init_coord_embeddings(model, tok)
    return model, tok, image_processor()


def save_checkpoint(model, tok, improc, out_dir: str | Path) -> Path:
    """The hub layout: safetensors weights, tokenizer files, preprocessor config, chat template."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    improc.processor_class = "Qwen2_5_VLProcessor"
    improc.save_pretrained(out)
    (out / "chat_template.jinja").write_text(tok.chat_template)
    return out
