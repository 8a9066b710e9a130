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
from coordbench.backends.hf_decode import Decoder, RowTrace, select_tokens, to_host
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
        t0 = time.perf_counter()
        active = torch.arange(n_rows, device=logits.device)
        live = list(range(n_rows))
        for step in range(params.max_new_tokens):
            chosen, raw, proc = select_tokens(
                logits,
                None if seen is None else seen[active],
                params,
                None if gens is None else [gens[i] for i in live],
            )
            keep = self._record(rows, live, *to_host(chosen, raw, proc))
            if seen is not None:
                seen[active, chosen] = True
            if step == params.max_new_tokens - 1 or not any(keep):
                break
            live = [r for r, k in zip(live, keep, strict=True) if k]
            if not all(keep):  # finished rows leave the batch, the caches and the encoder states
                idx = torch.tensor([i for i, k in enumerate(keep) if k], device=logits.device)
                cache.batch_select_indices(idx)
                chosen, active = chosen[idx], active[idx]
                enc, enc_mask = enc[idx.to(enc.device)], enc_mask[idx.to(enc_mask.device)]
            logits = self._decode_step(cache, chosen, enc, enc_mask)
        if logits.device.type == "cuda":
            torch.cuda.synchronize(logits.device)
        self.stats.decode_seconds += time.perf_counter() - t0
        self.stats.decode_tokens += sum(len(r.ids) for r in rows)
        return rows

    def _decode_step(self, cache, chosen, enc, enc_mask) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        _, logits = self._forward(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=enc_mask,
            decoder_input_ids=chosen[:, None],
            **{self.cache_kwarg: cache},
        )
        return logits
