"""Optional vLLM backend (GPU nodes, `pip install coordbench[vllm]`); vllm is imported lazily.

Same prompts as the HF backend (the checkpoint's chat template rendered by its own tokenizer, the
image placeholder expanded by vLLM's Qwen-VL processor), one `SamplingParams(seed=request.seed)`
per request so a sample's tokens do not depend on the batch (vLLM seeds per request), special
tokens kept in the text [UP-VLLM] and `logprobs=1` so a trace is always written
[UP-VLLM].

Log-probabilities: vLLM (V1 engine) returns the *raw* log-probability of the sampled token
(`logprobs_mode="raw_logprobs"`, its default: before penalties, temperature, top-k/top-p). Those
fill `logprobs_raw`; vLLM cannot return both kinds at once, so `logprobs_processed` repeats the raw
values and upstream-parity ("processed") confidence is unavailable with this backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordbench.backends.base import BackendInfo, GenerationStats
from coordbench.backends.hf_checkpoint import inspect_checkpoint
from coordbench.backends.hf_inputs import (
    check_grid,
    expected_grid,
    patch_merge,
    render_prompts,
    validate_params,
)
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError
from coordbench.types import Generation, GenerationRequest

NOT_INSTALLED = "vLLM is not installed: pip install coordbench[vllm] on a GPU node"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def sampling_kwargs(params: GenerationParams, seed: int, stop_ids: Sequence[int]) -> dict[str, Any]:
    """`vllm.SamplingParams` keyword arguments for one request (temperature 0 = greedy)."""
    validate_params(params)
    return {
        "n": 1,
        "seed": seed,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,  # vLLM: -1 = off (0 = off in HF)
        "repetition_penalty": params.repetition_penalty,
        "max_tokens": params.max_new_tokens,
        "stop_token_ids": sorted(stop_ids),
        "logprobs": 1,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
    }


def generation_from_output(sample_id: str, output: Any, tokenizer, n_prompt: int = 0) -> Generation:
    """A `Generation` from one vLLM `CompletionOutput` (text re-decoded from the token ids)."""
    ids = [int(t) for t in output.token_ids]
    steps = output.logprobs or []
    if len(steps) != len(ids):
        raise BackendError(
            f"sample {sample_id}: vLLM returned {len(steps)} logprobs for {len(ids)} tokens"
        )
    raw = [float(step[t].logprob) for t, step in zip(ids, steps, strict=True)]
    opts = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    return Generation(
        sample_id=sample_id,
        text=tokenizer.decode(ids, **opts),
        token_ids=ids,
        token_texts=tokenizer.batch_decode([[i] for i in ids], **opts),
        logprobs_raw=raw,
        logprobs_processed=list(raw),  # vLLM returns one kind only (module docstring)
        finish_reason="length" if output.finish_reason == "length" else "stop",
        n_prompt_tokens=n_prompt,
    )


class VLLMBackend:
    """`Backend` over an in-process `vllm.LLM` (module docstring)."""

    def __init__(
        self,
        ckpt: str | Path,
        *,
        trust_remote_code: bool = False,
        dtype: str = "auto",
        adapter: str | None = None,
        check_resize: bool = True,
        **llm_kwargs: Any,
    ):
        try:
            import vllm
        except ImportError:
            raise BackendError(NOT_INSTALLED) from None
        if adapter:
            raise BackendError(
                "the vLLM backend does not merge LoRA adapters: merge first or use --backend hf"
            )
        files = inspect_checkpoint(ckpt, trust_remote_code=trust_remote_code)
        from transformers import AutoImageProcessor, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(files.path), local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(
            str(files.path), local_files_only=True
        )
        self.template = self.tokenizer.chat_template
        vocab = self.tokenizer.get_vocab()
        self.stop_ids = [vocab[t] for t in STOP_TOKENS if t in vocab]
        self.check_resize = check_resize
        self.llm = vllm.LLM(
            model=str(files.path),
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            load_format="safetensors",
            **llm_kwargs,
        )
        self.stats = GenerationStats()
        self.info = BackendInfo(
            name="vllm",
            model_path=str(files.path),
            model_type=files.model_type,
            dtype=dtype,
            device="cuda",
            identity={"sampler": f"vllm/{vllm.__version__}"},
            provenance={"vllm": vllm.__version__, "logprobs": "raw (processed repeats raw)"},
        )

    def generate(
        self, batch: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]:
        import time

        from vllm import SamplingParams

        prompts, images = render_prompts(self.tokenizer, self.template, batch)
        if self.check_resize:
            self._check_sizes(batch, images)
        inputs = [
            {"prompt": p, "multi_modal_data": {"image": imgs}} if imgs else {"prompt": p}
            for p, imgs in zip(prompts, images, strict=True)
        ]
        sps = [SamplingParams(**sampling_kwargs(params, r.seed, self.stop_ids)) for r in batch]
        t0 = time.perf_counter()
        outs = self.llm.generate(inputs, sps, use_tqdm=False)
        self.stats.decode_seconds += time.perf_counter() - t0
        gens = [
            generation_from_output(
                r.sample_id, o.outputs[0], self.tokenizer, len(o.prompt_token_ids or [])
            )
            for r, o in zip(batch, outs, strict=True)
        ]
        self.stats.prefill_tokens += sum(g.n_prompt_tokens for g in gens)
        self.stats.decode_tokens += sum(g.n_new_tokens for g in gens)
        return gens

    def _check_sizes(self, batch: Sequence[GenerationRequest], images: list[list[Any]]) -> None:
        patch, merge = patch_merge(self.image_processor)
        for req, imgs in zip(batch, images, strict=True):
            grids = [expected_grid(self.image_processor, *img.size) for img in imgs]
            check_grid([img.size for img in imgs], grids, patch, merge, [req.sample_id] * len(imgs))

    def close(self) -> None:
        self.llm = None
