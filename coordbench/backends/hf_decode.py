"""Seeded per-sample decoding over a KV-cached forward, with a full token trace.

Why not `model.generate`: its sampler draws from one global RNG stream shared by the batch, so a
sample's tokens depend on batch size, composition, order and resume [UP-SAMPLING]. Here
each row owns a `torch.Generator` seeded from its request's seed and draws exactly one uniform per
generated token (inverse-CDF sampling); finished rows leave the batch and draw nothing. Logits are
processed in HF's order and with HF's formulas: repetition penalty, then temperature, top-k, top-p.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field

import torch  # noqa: TID253 - imported only via backends/hf.py, which the runner imports lazily

from coordbench.backends.base import GenerationStats
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError


@dataclass
class RowTrace:
    """The generated ids of one row with raw and processed log-probabilities."""

    ids: list[int] = field(default_factory=list)
    logprobs_raw: list[float] = field(default_factory=list)
    logprobs_processed: list[float] = field(default_factory=list)
    finish_reason: str = "length"


def repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF `RepetitionPenaltyLogitsProcessor`: seen tokens' logits x penalty if < 0,
    else / penalty."""
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def top_k_filter(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    """HF `TopKLogitsWarper`: keep logits >= the k-th largest (ties kept)."""
    k = min(top_k, scores.shape[-1])
    kth = torch.topk(scores, k, dim=-1).values[..., -1, None]
    return scores.masked_fill(scores < kth, float("-inf"))


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """HF `TopPLogitsWarper`: drop the low tail whose cumulative probability is <= 1 - top_p."""
    sorted_logits, sorted_idx = torch.sort(scores, descending=False, dim=-1)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cum <= (1 - top_p)
    remove_sorted[..., -1:] = False  # min_tokens_to_keep = 1
    remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


def scaled_scores(
    logits: torch.Tensor, seen: torch.Tensor | None, params: GenerationParams
) -> torch.Tensor:
    """The repetition penalty, then the temperature (not under greedy, as HF): every logits
    processor that rescales scores; `logits` itself when none applies."""
    scores = logits
    if params.repetition_penalty != 1.0 and seen is not None:
        scores = repetition_penalty(scores, seen, params.repetition_penalty)
    if params.greedy:
        return scores
    return scores / params.temperature


def process_logits(
    logits: torch.Tensor, seen: torch.Tensor | None, params: GenerationParams
) -> torch.Tensor:
    """Processed scores in HF order; greedy applies only the repetition penalty (as HF does)."""
    scores = scaled_scores(logits, seen, params)
    if params.greedy:
        return scores
    return filter_scores(scores, params)


def filter_scores(scores: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """Top-k, then top-p (the processors that mask tokens out), on scaled scores."""
    if params.top_k > 0:
        scores = top_k_filter(scores, params.top_k)
    if params.top_p < 1.0:
        scores = top_p_filter(scores, params.top_p)
    return scores


def sample_rows(scores: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row by inverse CDF, with one uniform from each row's own CPU generator.

    CPU generators make a seed's stream identical on every device. u is in (0, 1], so the chosen
    token always has a positive probability (a masked token adds nothing to the CDF).
    """
    probs = torch.softmax(scores.double(), dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = [1.0 - torch.rand((), generator=g, dtype=torch.float64).item() for g in generators]
    target = torch.tensor(u, dtype=torch.float64, device=scores.device)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, target).squeeze(1).clamp_(max=scores.shape[-1] - 1)


def select_tokens(
    logits: torch.Tensor,
    seen: torch.Tensor | None,
    params: GenerationParams,
    generators: list[torch.Generator] | None,
):
    """(chosen ids, raw logprobs, processed logprobs) for a (rows, vocab) float32 logits block."""
    scores = process_logits(logits, seen, params)
    chosen = scores.argmax(dim=-1) if params.greedy else sample_rows(scores, generators or [])
    idx = chosen[:, None]
    raw = torch.log_softmax(logits, dim=-1).gather(1, idx).squeeze(1)
    proc = raw if scores is logits else torch.log_softmax(scores, dim=-1).gather(1, idx).squeeze(1)
    return chosen, raw, proc


def to_host(chosen: torch.Tensor, raw: torch.Tensor, proc: torch.Tensor):
    """(ids, raw logprobs, processed logprobs) as lists with one device->host copy per step
    rather than three: float64 holds every token id and every float32 logprob exactly."""
    ids, lr, lp = torch.stack([chosen.double(), raw.double(), proc.double()]).tolist()
    return [int(t) for t in ids], lr, lp


def _cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV cache `cache`; earlier 5.x used `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Decoder:
    """Runs prefill + one-token steps for a left-padded batch; one `RowTrace` per row."""

    def __init__(self, model, stop_ids: set[int], stats: GenerationStats, position_offset: int = 0):
        self.model = model
        self.offset = position_offset  # first position id: 0, or 1 for PaliGemma
        self.stop_ids = stop_ids
        self.stats = stats
        self.cache_kwarg = _cache_kwarg(model)
        self.keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    def _forward(self, **kwargs):
        if self.keep_logits:  # last position only: no (batch x prompt x vocab) logits block
            kwargs["logits_to_keep"] = 1
        out = self.model(use_cache=True, return_dict=True, **kwargs)
        return out, out.logits[:, -1, :].float()  # NaN is caught in `_record`, without a sync

    def _prefill(self, inputs: dict):
        core = getattr(self.model, "model", self.model)
        if hasattr(core, "rope_deltas"):
            core.rope_deltas = None  # never reuse the previous batch's multimodal RoPE offsets
        t0 = time.perf_counter()
        out, logits = self._forward(**inputs)
        _sync(logits.device)
        self.stats.prefill_seconds += time.perf_counter() - t0
        self.stats.prefill_tokens += int(inputs["attention_mask"].sum())
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        deltas = getattr(core, "rope_deltas", None)
        return logits, cache, deltas

    def run(self, inputs: dict, seeds: list[int], params: GenerationParams) -> list[RowTrace]:
        n_rows = len(seeds)
        rows = [RowTrace() for _ in range(n_rows)]
        gens = None if params.greedy else [torch.Generator().manual_seed(s) for s in seeds]
        attn = inputs["attention_mask"]
        inputs = self._positions(inputs)
        logits, cache, deltas = self._prefill(inputs)
        seen = None
        if params.repetition_penalty != 1.0:  # HF penalises the prompt too; pads are not the prompt
            seen = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
            for b in range(n_rows):
                seen[b, inputs["input_ids"][b][attn[b].bool()]] = True
        state = {"attn": attn, "deltas": deltas}

        def advance(chosen: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
            logits, state["attn"], state["deltas"] = self._step(
                cache, chosen, state["attn"], state["deltas"], idx
            )
            return logits

        self._loop(rows, logits, seen, gens, params, advance)
        return rows

    def _positions(self, inputs: dict) -> dict:
        if "image_grid_thw" in inputs:  # mRoPE: the model derives positions from the grid
            return inputs
        pos = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0) + self.offset
        return {**inputs, "position_ids": pos}  # per-row positions skip left pads

    def score(self, inputs: dict, ids: list[int]) -> torch.Tensor:
        """The float32 logits that predicted each of `ids` (len(ids) x vocab) for one unpadded
        row: the prompt's prefill, then one causal forward over ids[:-1] against its KV cache.
        They depend on that row alone, never on the batch it was decoded in (`hf_rescore`)."""
        inputs = self._positions(inputs)
        first, cache, deltas = self._prefill(inputs)
        if len(ids) == 1:
            return first
        rest = self._extend(cache, ids[:-1], inputs["attention_mask"], deltas)
        return torch.cat([first, rest])

    def _extend(self, cache, tokens: list[int], attn, deltas) -> torch.Tensor:
        """Logits of every position of `tokens` appended to a one-row prompt's cache."""
        n = len(tokens)
        steps = torch.arange(n, device=attn.device)[None]
        pos = attn.sum(dim=1, keepdim=True) + self.offset + steps
        if deltas is not None:  # multimodal RoPE, as in `_step`
            pos = (pos + deltas.to(pos.device)).unsqueeze(0).expand(3, -1, -1)
        return self._forward_all(
            input_ids=torch.tensor([tokens], device=attn.device),
            attention_mask=torch.cat([attn, attn.new_ones(1, n)], dim=1),
            position_ids=pos,
            **{self.cache_kwarg: cache},
        )

    def _forward_all(self, **kwargs) -> torch.Tensor:
        """One row's logits at every input position (float32, positions x vocab)."""
        if self.keep_logits:
            kwargs["logits_to_keep"] = 0  # 0 keeps them all
        return self.model(use_cache=True, return_dict=True, **kwargs).logits[0].float()

    def _loop(self, rows, logits, seen, gens, params: GenerationParams, advance) -> None:
        """Select, record and advance until every row stopped or the token budget is spent;
        `advance(chosen, idx)` runs the next step for the rows `idx` that go on (None: all)."""
        t0 = time.perf_counter()
        active = torch.arange(len(rows), device=logits.device)
        live = list(range(len(rows)))  # host copy of `active`: no device read to know the rows
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
            idx = None
            if not all(keep):  # finished rows leave the batch (and the KV cache)
                idx = torch.tensor([i for i, k in enumerate(keep) if k], device=logits.device)
                chosen, active = chosen[idx], active[idx]
            logits = advance(chosen, idx)
        _sync(logits.device)
        self.stats.decode_seconds += time.perf_counter() - t0
        self.stats.decode_tokens += sum(len(r.ids) for r in rows)

    def _record(self, rows, active, chosen, raw, proc) -> list[bool]:
        keep = []
        for row, tok, lr, lp in zip(active, chosen, raw, proc, strict=True):
            if math.isnan(lr):  # a NaN anywhere in a row's logits makes its log-softmax NaN
                raise BackendError(
                    "the model produced NaN logits (broken weights or dtype overflow)"
                )
            r = rows[row]
            r.ids.append(tok)
            r.logprobs_raw.append(lr)
            r.logprobs_processed.append(lp)
            if tok in self.stop_ids:
                r.finish_reason = "stop"
            keep.append(tok not in self.stop_ids)
        return keep

    def _step(self, cache, chosen, attn, deltas, idx):
        if idx is not None:  # finished rows leave the KV cache and the masks
            cache.batch_select_indices(idx)
            attn = attn[idx.to(attn.device)]
            deltas = None if deltas is None else deltas[idx.to(deltas.device)]
        attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
        pos = attn[:, :-1].sum(dim=1, keepdim=True) + self.offset  # real tokens before this one
        if deltas is not None:  # multimodal RoPE: text positions continue after the image offset
            pos = (pos + deltas.to(pos.device)).view(1, -1, 1).expand(3, -1, -1)
        _, logits = self._forward(
            input_ids=chosen[:, None],
            attention_mask=attn,
            position_ids=pos,
            **{self.cache_kwarg: cache},
        )
        return logits, attn, deltas
