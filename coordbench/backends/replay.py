"""Replay backend: serves generations recorded in a run's token trace, without a model.

Lets the whole pipeline (parse, confidence, scoring, artifacts) re-run on recorded outputs,
and lets tests drive the runner with known model text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coordbench.backends.base import BackendInfo, GenerationStats
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError
from coordbench.rundir.files import TRACE, read_jsonl
from coordbench.types import Generation, GenerationRequest


def generation_from_trace(t: dict) -> Generation:
    texts = t.get("generated_token_text") or []
    processed = t.get("token_logprobs") or []
    return Generation(
        sample_id=t["sample_id"],
        text=t.get("text", "".join(texts)),
        token_ids=list(t.get("token_ids") or []),
        token_texts=list(texts),
        logprobs_raw=list(t.get("token_logprobs_raw") or processed),
        logprobs_processed=list(processed),
        finish_reason=t.get("finish_reason", "stop"),
        n_prompt_tokens=t.get("n_prompt_tokens", 0),
    )


class ReplayBackend:
    """Answers each request with the recorded generation of the same sample id."""

    def __init__(self, source: str | Path | dict[str, Generation]):
        if isinstance(source, dict):
            self._by_id = dict(source)
            path = "<memory>"
        else:
            path = str(source)
            trace_path = Path(source) / TRACE if Path(source).is_dir() else Path(source)
            rows, _ = read_jsonl(trace_path)
            self._by_id = {r["sample_id"]: generation_from_trace(r) for r in rows}
        self.info = BackendInfo(name="replay", model_path=path)
        self.stats = GenerationStats()

    def generate(
        self, batch: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]:
        out = []
        for req in batch:
            if req.sample_id not in self._by_id:
                raise BackendError(f"replay source has no generation for sample {req.sample_id!r}")
            out.append(self._by_id[req.sample_id])
        return out

    def close(self) -> None:
        self._by_id = {}
