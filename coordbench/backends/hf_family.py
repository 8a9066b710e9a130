"""What differs between the decoder-only VLM families the HF backend runs (no torch here).

One decode loop serves every family (`hf_decode`); this table holds the family-specific pieces:
how the prompt is rendered, how images are passed to the processor, which processor outputs the
model must not see, the RoPE positions under left padding, the stop tokens and whether the
processor-resize guard applies ([ARCH-FAMILIES]).
"""

from __future__ import annotations

from dataclasses import dataclass

from coordbench.errors import CheckpointError

QWEN_STOPS = ("<|im_end|>", "<|endoftext|>")  # Qwen2 chat end-of-turn and end-of-text
GEMMA_STOPS = ("<end_of_turn>", "<eos>")

# Why the resize guard is skipped: recorded in provenance.
FIXED_SIZE = (
    "the processor resizes every image (or tile) to a fixed square and the dialect answers in "
    "normalized coordinates, so the resize cannot move the boxes' frame"
)


@dataclass(frozen=True)
class Family:
    """The family-specific pieces of the HF backend."""

    name: str
    # chat template renders the prompt; None: the bare task text after `image_placeholder`s
    chat_template: bool = True
    image_placeholder: str = ""
    # processor takes images nested per prompt ([[img], [img]]) rather than one flat list
    nested_images: bool = False
    # processor outputs that are for training only (PaliGemma's `labels`)
    drop_inputs: tuple[str, ...] = ()
    # Qwen's mRoPE: positions come from the model's `rope_deltas` (3-D); else 1-D positions
    mrope: bool = False
    # first position id: PaliGemma counts from 1
    position_offset: int = 0
    stop_tokens: tuple[str, ...] = QWEN_STOPS
    # encoder-decoder (Florence-2): run by `hf_seq2seq.Seq2SeqBackend`, not the decoder-only loop
    encoder_decoder: bool = False
    # the processor-resize guard ([UP-PROCESSOR-RESIZE]); None when it applies, else why not
    resize_guard_skipped: str | None = None

    @property
    def resize_guard(self) -> bool:
        return self.resize_guard_skipped is None


_QWEN = Family("qwen", mrope=True)
FAMILIES: dict[str, Family] = {
    "qwen2_vl": _QWEN,
    "qwen2_5_vl": _QWEN,
    "qwen3_vl": _QWEN,
    "qwen3_vl_moe": _QWEN,
    # InternVL-hf: Qwen2 text tower, 448-px tiles, <IMG_CONTEXT> expanded by the processor.
    "internvl": Family("internvl", resize_guard_skipped=FIXED_SIZE),
    # Gemma 3: one 896-px image, <start_of_image> expanded; token_type_ids mark image tokens
    # for bidirectional attention in the prefill.
    "gemma3": Family(
        "gemma3", nested_images=True, stop_tokens=GEMMA_STOPS, resize_guard_skipped=FIXED_SIZE
    ),
    # PaliGemma: no chat template; `<image>` + task text, the processor adds BOS and "\n";
    # token_type_ids = 0 make the prefix bidirectional (prefix-LM); positions start at 1.
    "paligemma": Family(
        "paligemma",
        chat_template=False,
        image_placeholder="<image>",
        nested_images=True,
        drop_inputs=("labels",),
        position_offset=1,
        stop_tokens=GEMMA_STOPS,
        resize_guard_skipped=FIXED_SIZE,
    ),
    # Florence-2: encoder-decoder, the task token through the processor, `</s>` ends the answer
    # ([ARCH-SEQ2SEQ]).
    "florence2": Family(
        "florence2",
        chat_template=False,
        stop_tokens=("</s>",),
        resize_guard_skipped=FIXED_SIZE,
        encoder_decoder=True,
    ),
}
# Model types that exist only as remote code: say what to use instead.
REMOTE_ONLY = {
    "internvl_chat": "OpenGVLab's original InternVL checkpoints run remote code; use the "
    "transformers-native conversion (the '-hf' repos, model_type 'internvl')",
}


def family_for(model_type: str, where: str = "") -> Family:
    """The family of a checkpoint's `model_type`; unknown types fail naming the supported ones."""
    fam = FAMILIES.get(model_type)
    if fam is not None:
        return fam
    prefix = f"{where}: " if where else ""
    hint = f" ({REMOTE_ONLY[model_type]})" if model_type in REMOTE_ONLY else ""
    raise CheckpointError(
        f"{prefix}the hf backend does not support model_type {model_type!r}{hint}; "
        f"supported: {', '.join(FAMILIES)}"
    )
