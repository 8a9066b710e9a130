"""Hugging Face backend: decoder-only VLMs (Qwen2/2.5/3-VL, InternVL, Gemma 3, PaliGemma),
per-sample seeded decoding, full token trace.

Loading (safetensors only, no remote code unless asked, LoRA merge) is in `hf_loading`, prompt
building and the processor-resize guard in `hf_inputs`, the decode loop in `hf_decode`, what
differs per family in `hf_family`; this class ties them together and adds the CUDA OOM back-off.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from coordbench.backends import hf_inputs
from coordbench.backends.base import BackendInfo, GenerationStats
from coordbench.backends.hf_checkpoint import (
    CheckpointFiles,
    content_sha256,
    has_tokenizer,
    inspect_adapter,
    inspect_checkpoint,
)
from coordbench.backends.hf_decode import Decoder, RowTrace
from coordbench.backends.hf_family import QWEN_STOPS, family_for
from coordbench.backends.hf_loading import (
    choose_threads,
    load_model,
    load_processor,
    merge_adapter,
    resolve_device_dtype,
    versions,
)
from coordbench.backends.hf_rescore import token_logprobs
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError, CheckpointError
from coordbench.types import Generation, GenerationRequest

log = logging.getLogger(__name__)

STOP_TOKENS = QWEN_STOPS  # the Qwen families' (each family's are in `hf_family`)
# Version of the sampling algorithm (hf_decode): changing it changes sampled tokens, so it is
# part of the identity.
SAMPLER = "per-sample-inverse-cdf/1"


def is_oom(exc: BaseException) -> bool:
    """CUDA OOM, or any RuntimeError that says "out of memory" (other allocators, older torch)."""
    oom_cls = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if oom_cls is not None and isinstance(exc, oom_cls):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class HFBackend:
    """`Backend` over a local transformers checkpoint (see module docstring)."""

    encoder_decoder = False  # the model shape this class decodes (`hf_family.Family`)

    def __init__(
        self,
        ckpt: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        adapter: str | Path | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        attn_implementation: str = "sdpa",
        check_resize: bool = True,
        threads: int | None = None,
    ):
        files = inspect_checkpoint(
            ckpt, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
        )
        self.family = family_for(files.model_type, str(files.path))
        if self.family.encoder_decoder != self.encoder_decoder:
            kind = "encoder-decoder" if self.family.encoder_decoder else "decoder-only"
            raise CheckpointError(
                f"{files.path}: model_type {files.model_type!r} is {kind}; load it with "
                "backend_class('hf') (coordbench.backends.registry), which picks its backend"
            )
        adapter_dir = Path(adapter).expanduser() if adapter else None
        adapter_files = (
            inspect_adapter(adapter_dir, allow_pickle=allow_pickle) if adapter_dir else []
        )
        self.device, self.dtype_name = resolve_device_dtype(device, dtype)
        self.dtype = getattr(torch, self.dtype_name)
        self.check_resize = check_resize
        tok_dir = adapter_dir if adapter_dir and has_tokenizer(adapter_dir) else files.path
        self.processor, processor_path = load_processor(
            files, tokenizer_dir=tok_dir, trust_remote_code=trust_remote_code
        )
        self.tokenizer = self.processor.tokenizer
        self.template = (
            getattr(self.processor, "chat_template", None) or self.tokenizer.chat_template
        )
        if not self.template and self.family.chat_template:
            raise CheckpointError(
                f"no chat template in {tok_dir} (chat_template.jinja or tokenizer_config.json)"
            )
        self.model, attn = load_model(
            files,
            dtype=self.dtype_name,
            device=self.device,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        )
        if adapter_dir:
            self.model = merge_adapter(self.model, adapter_dir, self.tokenizer)
        n_params = sum(p.numel() for p in self.model.parameters())
        self.threads = choose_threads(threads, self.device, n_params)
        torch.set_num_threads(self.threads)  # process-wide; the run owns the process
        self.stop_ids = self._stop_ids()
        self.stats = GenerationStats()
        self._max_batch: int | None = None  # learned from OOMs, kept across calls
        self.info = self._info(
            files, adapter_dir, adapter_files, tok_dir, attn, attn_implementation, processor_path
        )

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in self.family.stop_tokens if t in vocab)
        for cfg in (
            getattr(self.model, "generation_config", None),
            self.model.config,
            getattr(self.model.config, "text_config", None),
        ):
            eos = getattr(cfg, "eos_token_id", None) if cfg is not None else None
            ids.update([eos] if isinstance(eos, int) else list(eos or []))
        return ids

    def _info(
        self,
        files: CheckpointFiles,
        adapter_dir,
        adapter_files,
        tok_dir,
        attn,
        attn_req,
        processor_path,
    ) -> BackendInfo:
        weights = content_sha256([*files.weights, files.path / "config.json"], files.path)
        identity = {"weights_sha256": weights, "dtype": self.dtype_name, "sampler": SAMPLER}
        extra = list(files.extra)
        if adapter_dir:
            adapter_sha = content_sha256(adapter_files, adapter_dir)
            identity["adapter_sha256"] = adapter_sha
            identity["weights_sha256"] = hashlib.sha256(
                f"{weights}\n{adapter_sha}".encode()
            ).hexdigest()
            extra += [p for p in adapter_dir.iterdir() if p.is_file() and "token" in p.name]
        identity["processor_sha256"] = content_sha256(extra, files.path)
        provenance = {
            **versions(),
            "attn_implementation": attn,
            "attn_requested": attn_req,
            "processor": processor_path,
            "tokenizer_dir": str(tok_dir),
            "adapter": str(adapter_dir) if adapter_dir else None,
            "stop_ids": sorted(self.stop_ids),
            "check_resize": self.check_resize and self.family.resize_guard,
            "torch_threads": self.threads,
        }
        if not self.family.resize_guard:  # Qwen runs record neither key (run.json unchanged)
            provenance["family"] = self.family.name
            provenance["resize_guard_skipped"] = self.family.resize_guard_skipped
        return BackendInfo(
            name="hf",
            model_path=str(files.path),
            model_type=files.model_type,
            dtype=self.dtype_name,
            device=self.device,
            identity=identity,
            provenance=provenance,
        )

    # ----------------------------------------------------------------------- resize guard

    def expected_grid(self, width: int, height: int) -> tuple[int, int, int]:
        """The (t, h, w) patch grid this checkpoint's processor gives a width x height image."""
        return hf_inputs.expected_grid(self.processor.image_processor, width, height)

    def check_image_size(self, width: int, height: int) -> None:
        """Raise `BackendError` if the processor would resize a width x height image (Qwen
        families only: the others resize every image to a fixed size, see `hf_family`)."""
        if not self.family.resize_guard:
            return
        patch, merge = hf_inputs.patch_merge(self.processor.image_processor)
        hf_inputs.check_grid([(width, height)], [self.expected_grid(width, height)], patch, merge)

    # ----------------------------------------------------------------------- generation

    def generate(
        self, batch: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]:
        """Generations in request order; on OOM the batch is halved and the same requests rerun."""
        hf_inputs.validate_params(params)
        out: list[Generation] = []
        size = min(len(batch), self._max_batch or len(batch))
        while len(out) < len(batch):
            chunk = batch[len(out) : len(out) + size]
            saved = dataclasses.replace(self.stats)
            try:
                out.extend(self._run_batch(chunk, params))
                continue
            except Exception as exc:
                if not is_oom(exc):
                    raise
                self.stats = dataclasses.replace(saved, oom_retries=saved.oom_retries + 1)
                if size == 1:
                    raise BackendError(
                        f"out of memory on sample {chunk[0].sample_id} even with a batch of 1: "
                        "lower --max-new-tokens, use a smaller preset or a larger GPU"
                    ) from exc
            # outside the except block: the traceback no longer pins the failed batch's tensors
            self._free_cuda()
            size = max(1, size // 2)
            self._max_batch = size
            log.warning("out of memory with a batch of %d; retrying with %d", len(chunk), size)
        return out

    def _run_batch(
        self, requests: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]:
        """One left-padded batch through prefill + decode, then the per-sample re-scoring (the
        step the OOM back-off retries)."""
        with torch.inference_mode():
            inputs = self._inputs(requests)
            rows = self._decoder(self.stats).run(inputs, [r.seed for r in requests], params)
            if params.logprobs == "per-sample":  # batch-invariant log-probs (hf_rescore)
                self._rescore(requests, rows, params)
        n_prompt = inputs["attention_mask"].sum(dim=1).tolist()
        return [
            self._generation(r, row, int(n))
            for r, row, n in zip(requests, rows, n_prompt, strict=True)
        ]

    def _inputs(self, requests: Sequence[GenerationRequest]) -> dict:
        """Left-padded model inputs on the device (after the resize guard)."""
        return hf_inputs.build_inputs(
            self.processor,
            self.template,
            requests,
            self.device,
            self.dtype,
            check_resize=self.check_resize,
            family=self.family,
        )

    def _decoder(self, stats: GenerationStats) -> Decoder:
        return Decoder(
            self.model, self.stop_ids, stats, position_offset=self.family.position_offset
        )

    def _penalised_prompt(self, inputs: dict) -> list[int]:
        """The tokens the repetition penalty sees before the first generated one (one row)."""
        return inputs["input_ids"][0].tolist()

    def _rescore(
        self, requests: Sequence[GenerationRequest], rows: list[RowTrace], params: GenerationParams
    ) -> None:
        """Replace each row's log-probs with those of a batch-of-one pass over its tokens."""
        t0 = time.perf_counter()
        for req, row in zip(requests, rows, strict=True):
            inputs = self._inputs([req])
            logits = self._decoder(GenerationStats()).score(inputs, row.ids)
            row.logprobs_raw, row.logprobs_processed = token_logprobs(
                logits, row.ids, self._penalised_prompt(inputs), params
            )
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.stats.rescore_seconds += time.perf_counter() - t0

    def _generation(self, req: GenerationRequest, row: RowTrace, n_prompt: int) -> Generation:
        tok = self.tokenizer
        opts = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
        return Generation(
            sample_id=req.sample_id,
            text=tok.decode(row.ids, **opts),  # up to and including the stop token, no pads
            token_ids=row.ids,
            token_texts=tok.batch_decode([[i] for i in row.ids], **opts),
            logprobs_raw=row.logprobs_raw,
            logprobs_processed=row.logprobs_processed,
            finish_reason=row.finish_reason,
            n_prompt_tokens=n_prompt,
        )

    def _free_cuda(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def close(self) -> None:
        self.model = None
        self.processor = None
        self._free_cuda()
