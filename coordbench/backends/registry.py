"""Backends by name -> `module:Class`, imported only when asked for (the heavy ones pull torch)."""

from __future__ import annotations

import importlib
from typing import Any

from coordbench.errors import ConfigError

BACKENDS = {
    "hf": "coordbench.backends.hf:HFBackend",
    "vllm": "coordbench.backends.vllm:VLLMBackend",
    "replay": "coordbench.backends.replay:ReplayBackend",  # named `replay:RUN_DIR` on the CLI
}


def backend_class(name: str) -> Any:
    """The class registered under `name` (`replay:RUN_DIR` resolves to `replay`)."""
    key = "replay" if name.startswith("replay:") else name
    target = BACKENDS.get(key)
    if target is None:
        raise ConfigError(
            f"expected `backend` to be one of ('hf', 'vllm', 'replay:RUN_DIR') but got {name!r}"
        )
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def accelerate_state() -> Any:
    """accelerate's PartialState: CUDA when present, else CPU with gloo."""
    from accelerate import PartialState

    return PartialState(cpu=not cuda_available())
