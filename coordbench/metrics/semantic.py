"""Desc -> class matching by sentence-embedding cosine [UP-COCO-CATEGORIES], loaded lazily.

The encoder is only loaded when some text pair is not already equal after normalisation, so
evaluating a run whose descs are all exact class names never imports torch. Encoding follows
upstream `SemanticDescEncoder`: inputs truncated to 64 tokens, attention-masked mean pooling,
L2 normalisation, cosine = dot product (float32).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from coordbench.backends.text_encoder import Encoder, load_encoder, resolve_model_dir
from coordbench.rundir.files import write_bytes_atomic

CACHE_ENV = "COORDBENCH_SEMANTIC_CACHE"  # a folder, or `off`

__all__ = ["Encoder", "Semantic", "cache_dir", "normalize_desc", "resolve_model_dir"]


def normalize_desc(desc: object) -> str:
    """Lowercase; `_ / ( )` -> space; whitespace collapsed (upstream `normalize_desc`)."""
    if type(desc) is str:
        return _normalize_str(desc)
    return _normalize_str(str(desc or ""))


@functools.lru_cache(maxsize=65536)  # a run has few distinct descs and sees each very often
def _normalize_str(desc: str) -> str:
    s = desc.strip().lower()
    s = re.sub(r"[_/()]", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def cache_dir() -> Path | None:
    """Where embeddings are cached: `$COORDBENCH_SEMANTIC_CACHE` (`off` disables), else
    `$XDG_CACHE_HOME/coordbench/semantic`, else `~/.cache/coordbench/semantic`."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "coordbench" / "semantic"


class EmbeddingCache:
    """Embeddings of one encoder model on disk (`<sha256 of the model name>.npz`), so a second
    eval of the same run never loads torch. Writes are atomic; an unreadable file is ignored."""

    def __init__(self, model: str, folder: Path | None):
        key = hashlib.sha256(model.encode("utf-8")).hexdigest()[:16]
        self.path = folder / f"{key}.npz" if folder is not None else None
        self.vecs: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    self.vecs = dict(zip(z["texts"].tolist(), z["vecs"], strict=True))
            except (OSError, ValueError, KeyError):
                self.vecs = {}

    def save(self) -> None:
        if self.path is None or not self.vecs:
            return
        texts = sorted(self.vecs)
        buf = io.BytesIO()
        np.savez(buf, texts=np.array(texts), vecs=np.stack([self.vecs[t] for t in texts]))
        try:
            write_bytes_atomic(self.path, buf.getvalue())
        except OSError:
            pass  # a read-only home must not fail an evaluation: the cache is an optimisation


class Semantic:
    """Cosine similarities between normalised descs; embeds each text once, loads lazily.

    `classes` are the normalised names of the evaluated vocabulary: two different class names
    are two different classes, so they are never compared by cosine (sim None) and a run whose
    descs are all class names never loads the encoder [ARCH-SEMANTIC].
    """

    def __init__(self, model: str, encoder: Encoder | None = None, classes: Iterable[str] = ()):
        self.model = model
        self._encoder = encoder
        self._vecs: dict[str, np.ndarray] = {}
        self._sims: dict[tuple[str, str], float] = {}
        self.classes = frozenset(classes)
        self.loaded = False
        self._cache: EmbeddingCache | None = None

    def distinct_classes(self, a: str, b: str) -> bool:
        return a != b and a in self.classes and b in self.classes

    def embed(self, texts: Iterable[str]) -> None:
        """Embed the (non-empty) texts not seen yet, in one batch (disk cache first)."""
        todo = sorted({t for t in texts if t and t not in self._vecs})
        if not todo:
            return
        if self._encoder is None:  # the real model: its embeddings may be cached on disk
            if self._cache is None:
                self._cache = EmbeddingCache(self.model, cache_dir())
            self._vecs.update({t: self._cache.vecs[t] for t in todo if t in self._cache.vecs})
            todo = [t for t in todo if t not in self._vecs]
            if not todo:
                return
            self._encoder = load_encoder(self.model)
            self.loaded = True
            vecs = np.asarray(self._encoder(todo), dtype=np.float32)
            self._cache.vecs.update(zip(todo, vecs, strict=True))
            self._cache.save()
        else:
            self.loaded = True
            vecs = np.asarray(self._encoder(todo), dtype=np.float32)
        for t, v in zip(todo, vecs, strict=True):
            self._vecs[t] = v

    def sim(self, a: str, b: str) -> float | None:
        """Cosine of two normalised texts; 1.0 when equal; None when either is empty or both
        are different class names."""
        if not a or not b:
            return None
        if a == b:
            return 1.0
        if self.distinct_classes(a, b):
            return None
        got = self._sims.get((a, b))
        if got is None:
            self.embed((a, b))
            got = self._sims[a, b] = float(self._vecs[a] @ self._vecs[b])
        return got

    def best(self, text: str, candidates: list[str]) -> tuple[int, float] | None:
        """(index, cosine) of the most similar candidate (first on ties), or None (no
        candidate, or a class name among other class names only)."""
        if not text or not candidates:
            return None
        if text in candidates:
            return candidates.index(text), 1.0
        if text in self.classes and all(c in self.classes for c in candidates):
            return None
        self.embed([text, *candidates])
        sims = [s if (s := self.sim(text, c)) is not None else -np.inf for c in candidates]
        j = int(np.argmax(sims))
        return (j, sims[j]) if np.isfinite(sims[j]) else None
