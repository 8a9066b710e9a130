"""Desc -> class matching by sentence-embedding cosine [UP-COCO-CATEGORIES], loaded lazily.

The encoder is only loaded when some text pair is not already equal after normalisation, so
evaluating a run whose descs are all exact class names never imports torch. Encoding follows
upstream `SemanticDescEncoder`: inputs truncated to 64 tokens, attention-masked mean pooling,
L2 normalisation, cosine = dot product (float32).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from coordbench.backends.text_encoder import Encoder, load_encoder, resolve_model_dir

__all__ = ["Encoder", "Semantic", "normalize_desc", "resolve_model_dir"]


def normalize_desc(desc: object) -> str:
    """Lowercase; `_ / ( )` -> space; whitespace collapsed (upstream `normalize_desc`)."""
    s = str(desc or "").strip().lower()
    s = re.sub(r"[_/()]", " ", s)
    return re.sub(r"\s+", " ", s).strip()


class Semantic:
    """Cosine similarities between normalised descs; embeds each text once, loads lazily."""

    def __init__(self, model: str, encoder: Encoder | None = None):
        self.model = model
        self._encoder = encoder
        self._vecs: dict[str, np.ndarray] = {}
        self._sims: dict[tuple[str, str], float] = {}
        self.loaded = False

    def embed(self, texts: Iterable[str]) -> None:
        """Embed the (non-empty) texts not seen yet, in one batch."""
        todo = sorted({t for t in texts if t and t not in self._vecs})
        if not todo:
            return
        if self._encoder is None:
            self._encoder = load_encoder(self.model)
        self.loaded = True
        for t, v in zip(todo, self._encoder(todo), strict=True):
            self._vecs[t] = np.asarray(v, dtype=np.float32)

    def sim(self, a: str, b: str) -> float | None:
        """Cosine of two normalised texts; 1.0 when equal; None when either is empty."""
        if not a or not b:
            return None
        if a == b:
            return 1.0
        got = self._sims.get((a, b))
        if got is None:
            self.embed((a, b))
            got = self._sims[a, b] = float(self._vecs[a] @ self._vecs[b])
        return got

    def best(self, text: str, candidates: list[str]) -> tuple[int, float] | None:
        """(index, cosine) of the most similar candidate (first on ties), or None."""
        if not text or not candidates:
            return None
        if text in candidates:
            return candidates.index(text), 1.0
        self.embed([text, *candidates])
        sims = [s if (s := self.sim(text, c)) is not None else -np.inf for c in candidates]
        j = int(np.argmax(sims))
        return j, sims[j]
