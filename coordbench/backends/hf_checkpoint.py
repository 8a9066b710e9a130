"""Checkpoint preflight and content hash (stdlib only): refuse unsafe or incomplete folders early.

Every refusal (missing files, pickle weights, remote code, corrupt safetensors, a text-only
model) is a one-line `CheckpointError` naming the path, raised before torch or transformers is
imported; the vLLM backend uses the same checks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordbench.errors import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


@dataclass
class CheckpointFiles:
    """What the preflight found in a checkpoint folder."""

    path: Path
    config: dict[str, Any]
    weights: list[Path]
    safetensors: bool
    tokenizer_dir: Path
    extra: list[Path] = field(default_factory=list)  # tokenizer / processor / template files

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return data


def check_safetensors(path: Path) -> None:
    """Validate a safetensors header and that the data region matches the file size (no torch)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        # safetensors caps the header at 100 MB (safetensors/src/tensor.rs MAX_HEADER_SIZE)
        if n <= 0 or n > 100_000_000 or 8 + n > size:
            raise CheckpointError(f"corrupt safetensors file {path}: bad header length")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"corrupt safetensors file {path}: header is not JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"corrupt safetensors file {path}: header is not a JSON object")
    ends = [
        t["data_offsets"][1]
        for k, t in header.items()
        if k != "__metadata__" and isinstance(t, dict) and "data_offsets" in t
    ]
    if max(ends, default=0) != size - 8 - n:
        raise CheckpointError(
            f"corrupt safetensors file {path}: {size - 8 - n} data bytes, "
            f"header says {max(ends, default=0)}"
        )


def find_weights(path: Path, *, allow_pickle: bool, prefix: str = "") -> tuple[list[Path], bool]:
    """The weight files of a folder (safetensors preferred); pickle only when allowed."""
    st = sorted(p for p in path.glob(f"{prefix}*.safetensors") if p.is_file())
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise CheckpointError(f"{path}: shard {missing[0]} listed in {index.name} is missing")
    if st:
        for p in st:
            check_safetensors(p)
        return st, True
    pickles = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    pickles = [p for p in pickles if p.name.startswith(prefix)]
    if pickles and not allow_pickle:
        raise CheckpointError(
            f"{path} has only pickle weights ({pickles[0].name}): refusing to unpickle them; "
            "convert to safetensors or pass --allow-pickle"
        )
    if not pickles:
        raise CheckpointError(f"no weights (*.safetensors) in {path}")
    return pickles, False


def has_tokenizer(path: Path) -> bool:
    return any(all((path / f).is_file() for f in fs) for fs in TOKENIZER_FILE_SETS)


def inspect_checkpoint(
    path: str | Path, *, trust_remote_code: bool = False, allow_pickle: bool = False
) -> CheckpointFiles:
    """Preflight a merged checkpoint folder; raises `CheckpointError` naming the path."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_dir():
        raise CheckpointError(f"checkpoint must be a folder (config.json + weights): {p}")
    if not (p / "config.json").is_file():
        raise CheckpointError(f"no config.json in {p}: not a Hugging Face checkpoint folder")
    config = read_json(p / "config.json")
    if config.get("auto_map") and not trust_remote_code:
        raise CheckpointError(
            f"{p / 'config.json'} asks for remote code (auto_map); "
            "pass --trust-remote-code to run it"
        )
    if not isinstance(config.get("vision_config"), dict):
        raise CheckpointError(
            f"{p} is not a vision-language checkpoint: config.json (model_type "
            f"{config.get('model_type')!r}) has no vision_config"
        )
    weights, is_st = find_weights(p, allow_pickle=allow_pickle)
    if not has_tokenizer(p):
        raise CheckpointError(
            f"no tokenizer files in {p} (tokenizer.json or vocab.json + merges.txt)"
        )
    if not any((p / f).is_file() for f in PROCESSOR_FILES):
        raise CheckpointError(
            f"no image processor config in {p} (preprocessor_config.json or processor_config.json)"
        )
    extra = [p / f for f in sorted(set(sum(TOKENIZER_FILE_SETS, ())) | {"tokenizer_config.json"})]
    extra += [p / f for f in PROCESSOR_FILES + CHAT_TEMPLATE_FILES]
    return CheckpointFiles(p, config, weights, is_st, p, [f for f in extra if f.is_file()])


def inspect_adapter(path: str | Path, *, allow_pickle: bool = False) -> list[Path]:
    """Preflight a LoRA adapter folder; returns its files to hash."""
    p = Path(path).expanduser()
    if not (p / "adapter_config.json").is_file():
        raise CheckpointError(f"no adapter_config.json in adapter folder {p}")
    read_json(p / "adapter_config.json")
    weights, _ = find_weights(p, allow_pickle=allow_pickle, prefix="adapter_model")
    return [p / "adapter_config.json", *weights]


def content_sha256(files: list[Path], root: Path) -> str:
    """sha256 over (relative name, sha256 of bytes) of each file, in name order."""
    outer = hashlib.sha256()
    for f in sorted(files, key=lambda x: str(x.relative_to(root) if x.is_relative_to(root) else x)):
        inner = hashlib.sha256()
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                inner.update(chunk)
        name = str(f.relative_to(root)) if f.is_relative_to(root) else f"{f.parent.name}/{f.name}"
        outer.update(f"{name}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()
