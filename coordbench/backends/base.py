"""The narrow waist between "produce outputs" and "judge outputs" (STYLE.md rule 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coordbench.config.options import GenerationParams
from coordbench.types import Generation, GenerationRequest


@dataclass
class BackendInfo:
    """What a backend is, recorded in run.json (identity fields vs provenance fields)."""

    name: str  # "hf" | "replay" | "vllm"
    model_path: str
    model_type: str = ""
    dtype: str = ""
    device: str = ""
    identity: dict[str, Any] = field(
        default_factory=dict
    )  # changes the numbers (e.g. weights hash)
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, attention impl, ...


@dataclass
class GenerationStats:
    """Accumulated token counts and seconds, for tokens/s in provenance."""

    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    oom_retries: int = 0
    rescore_seconds: float = 0.0  # hf: the per-sample log-prob pass after each batch


class Backend(Protocol):
    info: BackendInfo
    stats: GenerationStats

    def generate(
        self, batch: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]: ...

    def close(self) -> None: ...
