"""Batch-invariant log-probs of decoded tokens: one scoring pass per sample (`--logprobs
per-sample`; README "Throughput and determinism").

The decode loop (`hf_decode`) makes a sample's tokens independent of its batch, but not the
log-probs it reads on the way: a batched matmul rounds differently by batch shape and padding
(up to ~1e-5 on CPU), and confidence scores, hence AP, are built from those log-probs. With
`--logprobs per-sample`, after a batch is decoded each sample's kept tokens are scored again on
their own (batch of one, no padding): the prompt's prefill, then one forward over the generated
tokens. Those logits are a function of the sample alone, so `gt_vs_pred_scored.jsonl` and the
metrics are byte-identical at every batch size, shard count and resume point (given the same
tokens, device, dtype and thread count). The price is a second prefill of every prompt (about
+37 % wall on the embedded run, `bench/logprob_pass_cost.py`), hence an option.

The processed log-prob (upstream's) is read from the same logits through the same processors as
in decoding (`hf_decode.scaled_scores` / `filter_scores`), over the tokens top-k / top-p keep
plus the chosen token: the re-scored logits can differ from the decode's in the last bits, and a
sampled token at the nucleus boundary must not come out as -inf.
"""

from __future__ import annotations

import math

import torch  # noqa: TID253 - imported only via backends/hf.py, which the runner imports lazily

from coordbench.backends.hf_decode import filter_scores, scaled_scores
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError

CHUNK = 64  # rows processed at once: bounds the (rows x vocab) seen-mask and sort buffers


def token_logprobs(
    logits: torch.Tensor,
    ids: list[int],
    prompt_ids: list[int],
    params: GenerationParams,
) -> tuple[list[float], list[float]]:
    """(raw, processed) log-probs of `ids`, given the logits that predicted each of them.

    `prompt_ids` are the tokens the repetition penalty sees before the first generated one (HF
    penalises the prompt too). Raises `BackendError` on NaN logits, as the decode loop does.
    """
    idx = torch.tensor(ids, device=logits.device)[:, None]
    raw = torch.log_softmax(logits, dim=-1).gather(1, idx).squeeze(1)
    if params.greedy and params.repetition_penalty == 1.0:
        proc = raw
    else:
        proc = torch.cat(
            [
                _processed(logits[a : a + CHUNK], idx[a : a + CHUNK], ids, prompt_ids, a, params)
                for a in range(0, len(ids), CHUNK)
            ]
        )
    lr, lp = torch.stack([raw.double(), proc.double()]).tolist()
    if any(math.isnan(v) for v in lr):
        raise BackendError("the model produced NaN logits (broken weights or dtype overflow)")
    return lr, lp


def _processed(logits, idx, ids, prompt_ids, start: int, params: GenerationParams):
    """Processed log-probs of rows start .. start + len(logits) - 1."""
    seen = None
    if params.repetition_penalty != 1.0:
        seen = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        running = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        running[torch.tensor(prompt_ids + ids[:start], dtype=torch.long, device=logits.device)] = (
            True
        )
        for r in range(len(logits)):
            seen[r] = running
            running[ids[start + r]] = True
    scaled = scaled_scores(logits, seen, params)
    kept = scaled if params.greedy else filter_scores(scaled, params)
    kept = kept.scatter(1, idx, scaled.gather(1, idx))  # the chosen token is never masked out
    return torch.log_softmax(kept, dim=-1).gather(1, idx).squeeze(1)
