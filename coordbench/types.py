"""Plain data types shared by every layer (stdlib only).

Frames: every `Box` is xyxy in the *preset image's* pixels. Other frames (norm1000, original
COCO scale) exist only inside `data/coords.py`, the parsers and the exporters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in preset-image pixels, xyxy (x0 <= x1, y0 <= y1)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    score: float | None = None

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def xyxy(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass(frozen=True)
class Sample:
    """Ground truth for one image; `sample_id` keys every JSONL record we write."""

    sample_id: str
    index: int  # 0-based position in the dataset file (after --limit)
    image_path: str  # resolved path on disk
    image: str  # the record's `images[0]`, relative to the JSONL's folder
    width: int
    height: int
    boxes: tuple[Box, ...]
    image_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # file_name, metadata, original size ...


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt for a backend. `messages` is the chat-template list; `image` a PIL image."""

    sample_id: str
    messages: list[dict[str, Any]]
    image: Any
    seed: int  # per-sample seed derived from (run seed, sample id)


@dataclass
class Generation:
    """What a backend returns for one request, with its token trace."""

    sample_id: str
    text: str
    token_ids: list[int]
    token_texts: list[str]
    logprobs_raw: list[float]  # log_softmax of the model's logits, before any processing
    logprobs_processed: list[
        float
    ]  # after repetition penalty / temperature / top-k / top-p (upstream)
    finish_reason: str  # "stop" | "length"
    n_prompt_tokens: int = 0

    @property
    def n_new_tokens(self) -> int:
        return len(self.token_ids)


class ParseStatus(StrEnum):
    OK = "ok"
    SALVAGED = "salvaged"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"


SURFACES = ("coord_tokens", "norm1000", "pixel", "rel1000")
