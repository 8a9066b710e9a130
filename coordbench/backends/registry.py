"""Backends by name -> `module:Class`, imported only when asked for (the heavy ones pull torch)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from coordbench.errors import ConfigError

BACKENDS = {
    "hf": "coordbench.backends.hf:HFBackend",
    "vllm": "coordbench.backends.vllm:VLLMBackend",
    "replay": "coordbench.backends.replay:ReplayBackend",  # named `replay:RUN_DIR` on the CLI
    "openai": "coordbench.backends.served:ServedBackend",  # named `openai:URL` on the CLI
}
# `hf` checkpoints that need another class than the decoder-only one, by config.json model_type
HF_BY_MODEL_TYPE = {
    "florence2": "coordbench.backends.hf_seq2seq:Seq2SeqBackend",  # encoder-decoder
}


def _load(target: str) -> Any:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def backend_class(name: str) -> Any:
    """The class registered under `name` (`replay:RUN_DIR` resolves to `replay`); for `hf`, a
    factory that picks the class by the checkpoint's model type (`hf_backend`)."""
    key = name.split(":", 1)[0] if name.startswith(("replay:", "openai:")) else name
    target = BACKENDS.get(key)
    if target is None:
        raise ConfigError(
            "expected `backend` to be one of ('hf', 'vllm', 'replay:RUN_DIR', 'openai:URL') "
            f"but got {name!r}"
        )
    return hf_backend if key == "hf" else _load(target)


def hf_model_type(ckpt: str | Path) -> str:
    """config.json's model_type, or "" when unreadable (the backend's preflight names the error)."""
    try:
        config = json.loads((Path(ckpt).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return ""
    return str(config.get("model_type", "")) if isinstance(config, dict) else ""


def hf_backend(ckpt: str | Path, **kwargs: Any) -> Any:
    """The `hf` backend for `ckpt`: its model type's class in `HF_BY_MODEL_TYPE`, else HFBackend."""
    return _load(HF_BY_MODEL_TYPE.get(hf_model_type(ckpt), BACKENDS["hf"]))(ckpt, **kwargs)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def accelerate_state() -> Any:
    """accelerate's PartialState: CUDA when present, else CPU with gloo."""
    from accelerate import PartialState

    return PartialState(cpu=not cuda_available())
