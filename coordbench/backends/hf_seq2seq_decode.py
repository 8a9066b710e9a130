"""Seeded per-sample decoding for encoder-decoder checkpoints (Florence-2), with a full token trace.

The same contract as `hf_decode.Decoder` [UP-SAMPLING]: each row owns a CPU `torch.Generator` seeded
from its request and draws one uniform per generated token through `hf_decode.select_tokens` (the
same logits processing and inverse-CDF sampler); finished rows leave the batch and draw nothing.
What differs is the model's shape: the encoder (vision tower + text encoder) runs once per batch,
then the decoder takes one token per step against its self-attention KV cache and the cached
cross-attention keys of the encoder states (an `EncoderDecoderCache`). Every row's decoder starts
from the same prefix (decoder start token, then the forced BOS when the checkpoint forces one), so
decoder positions agree across rows and a row's tokens do not depend on its batch.
"""

from __future__ import annotations

import time

import torch  # noqa: TID253 - imported only via backends/hf_seq2seq.py, which is imported lazily

from coordbench.backends.base import GenerationStats
from coordbench.backends.hf_decode import Decoder, RowTrace
from coordbench.config.options import GenerationParams


class Seq2SeqDecoder(Decoder):
    """Encoder once, then one decoder token per step; one `RowTrace` per row (`Decoder`'s
    bookkeeping: stop tokens, NaN check, cache keyword)."""

    def __init__(
        self, model, decoder_prefix: list[int], stop_ids: set[int], stats: GenerationStats
    ):
        super().__init__(model, stop_ids, stats)
        self.prefix = decoder_prefix

    def _first(self, inputs: dict):
        """Encoder + the decoder prefix: (last-position logits, cache, encoder states)."""
        n = inputs["input_ids"].shape[0]
        dec = torch.tensor([self.prefix] * n, dtype=torch.long, device=inputs["input_ids"].device)
        t0 = time.perf_counter()
        out, logits = self._forward(**inputs, decoder_input_ids=dec)
        if logits.device.type == "cuda":
            torch.cuda.synchronize(logits.device)
        self.stats.prefill_seconds += time.perf_counter() - t0
        self.stats.prefill_tokens += int(inputs["attention_mask"].sum())
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        return logits, cache, out.encoder_last_hidden_state

    def run(self, inputs: dict, seeds: list[int], params: GenerationParams) -> list[RowTrace]:
        n_rows = len(seeds)
        rows = [RowTrace() for _ in range(n_rows)]
        gens = None if params.greedy else [torch.Generator().manual_seed(s) for s in seeds]
        logits, cache, enc = self._first(inputs)
        enc_mask = inputs["attention_mask"]
        seen = None
        if params.repetition_penalty != 1.0:  # HF penalises the decoder's own inputs (the prefix)
            seen = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
            seen[:, self.prefix] = True
        state = {"enc": enc, "enc_mask": enc_mask}

        def advance(chosen: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
            if idx is not None:  # finished rows leave the caches and the encoder states
                cache.batch_select_indices(idx)
                state["enc"] = state["enc"][idx.to(state["enc"].device)]
                state["enc_mask"] = state["enc_mask"][idx.to(state["enc_mask"].device)]
            return self._decode_step(cache, chosen, state["enc"], state["enc_mask"])

        self._loop(rows, logits, seen, gens, params, advance)
        return rows

    def score(self, inputs: dict, ids: list[int]) -> torch.Tensor:
        """`Decoder.score` for one encoder row: the encoder and the prefix, then one causal
        decoder forward over ids[:-1] against the prefix's cache."""
        from transformers.modeling_outputs import BaseModelOutput

        first, cache, enc = self._first(inputs)
        if len(ids) == 1:
            return first
        rest = self._forward_all(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=inputs["attention_mask"],
            decoder_input_ids=torch.tensor([ids[:-1]], device=enc.device),
            **{self.cache_kwarg: cache},
        )
        return torch.cat([first, rest])

    def _decode_step(self, cache, chosen, enc, enc_mask) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        _, logits = self._forward(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=enc_mask,
            decoder_input_ids=chosen[:, None],
            **{self.cache_kwarg: cache},
        )
        return logits
