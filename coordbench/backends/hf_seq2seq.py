"""Hugging Face backend for encoder-decoder VLMs: Florence-2 (`Florence2ForConditionalGeneration`).

What `HFBackend` does for decoder-only checkpoints, for a model that encodes the image and prompt
once and decodes against that [ARCH-SEQ2SEQ]: the same safe loading (`inspect_checkpoint`,
`load_model`, `load_processor`: safetensors only, no remote code unless asked), the same identity
(weights and processor hashes, dtype, sampler version), the same CUDA OOM back-off and token trace
(inherited), and the same seeded sampler (`hf_decode.select_tokens`, via `Seq2SeqDecoder`).

Family differences: no chat template (the prompt is the task token, e.g. `<OD>`, which the
processor expands to its instruction and wraps as `<image>*577 <s> text </s>`); the encoder input
is right padded (BART's encoder positions are absolute, and the image tokens come first); decoding
starts from the decoder start token and the forced BOS; the processor resizes every image to its
fixed square (768 x 768 for Florence-2) and the model answers in 1000 normalized bins, so the
Qwen resize guard does not apply (recorded in provenance as skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordbench.backends import hf_inputs
from coordbench.backends.base import GenerationStats
from coordbench.backends.hf import HFBackend
from coordbench.backends.hf_seq2seq_decode import Seq2SeqDecoder
from coordbench.errors import BackendError, CheckpointError
from coordbench.types import GenerationRequest


class Seq2SeqBackend(HFBackend):
    """`Backend` over a local encoder-decoder checkpoint (see module docstring)."""

    encoder_decoder = True

    def __init__(self, ckpt: str | Path, *, adapter: str | Path | None = None, **kwargs: Any):
        """`HFBackend`'s safe loading, then the decoder prefix; adapters are refused."""
        if adapter:
            raise CheckpointError(
                f"{ckpt}: LoRA adapters are not supported for encoder-decoder checkpoints; "
                "merge the adapter into the weights first"
            )
        super().__init__(ckpt, **kwargs)
        self.tokenizer.padding_side = "right"  # absolute encoder positions: pads go last
        self.decoder_prefix = self._decoder_prefix(Path(self.info.model_path))
        self.info.provenance.update(
            decoder_prefix=self.decoder_prefix,
            prompt_format="task token through the processor (no chat template)",
            checkpoint_generation_config="ignored: decoding follows the run's decode preset",
        )

    def _decoder_prefix(self, path: Path) -> list[int]:
        """Decoder start token, then the BOS that the checkpoint's generation config forces."""
        gen = getattr(self.model, "generation_config", None)
        text = getattr(self.model.config, "text_config", self.model.config)
        start = getattr(gen, "decoder_start_token_id", None)
        if start is None:
            start = getattr(text, "decoder_start_token_id", None)
        if start is None:
            raise CheckpointError(f"{path}: no decoder_start_token_id in its configs")
        forced = getattr(gen, "forced_bos_token_id", None)
        if forced is None:
            forced = getattr(text, "forced_bos_token_id", None)
        return [int(start)] + ([int(forced)] if forced is not None else [])

    # ----------------------------------------------------------------------- resize guard

    def expected_grid(self, width: int, height: int) -> tuple[int, int, int]:
        """(1, rows, cols) of image tokens: fixed by the processor's square, whatever the image."""
        size = self.processor.image_processor.size
        stride = 1
        for s in getattr(self.model.config.vision_config, "patch_stride", [1]):
            stride *= int(s)
        return 1, int(size["height"]) // stride, int(size["width"]) // stride

    # ----------------------------------------------------------------------- generation

    def _build_inputs(self, requests: Sequence[GenerationRequest]) -> dict[str, Any]:
        texts, images = [], []
        for req in requests:
            msgs, imgs = hf_inputs.split_messages(req.messages, req.image)
            if len(imgs) != 1:
                raise BackendError(
                    f"sample {req.sample_id}: {self.info.model_type} takes exactly one image "
                    f"per prompt, got {len(imgs)}"
                )
            texts.append(hf_inputs.bare_text(msgs))
            images.append(imgs[0])
        try:
            inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True)
        except ValueError as exc:  # e.g. a task token with other text around it
            raise BackendError(f"the {self.info.model_type} processor refused: {exc}") from exc
        out = {k: v.to(self.device) for k, v in inputs.items() if hasattr(v, "to")}
        out["pixel_values"] = out["pixel_values"].to(self.dtype)
        return out

    def _inputs(self, requests: Sequence[GenerationRequest]) -> dict[str, Any]:
        return self._build_inputs(requests)

    def _decoder(self, stats: GenerationStats) -> Seq2SeqDecoder:
        """Encoder once per batch, then seeded decoding (`HFBackend._run_batch` drives it)."""
        return Seq2SeqDecoder(self.model, self.decoder_prefix, self.stop_ids, stats)

    def _penalised_prompt(self, inputs: dict) -> list[int]:
        return list(self.decoder_prefix)  # HF penalises the decoder's own inputs, not the encoder's
