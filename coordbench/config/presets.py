"""TOML presets under `configs/{rescale,prompt,decode}/`: data, validated, unknown keys rejected.

A preset is named by its file stem (`--preset 768` -> `configs/rescale/768.toml`) or given as a
path to a `.toml` file. The configs folder is `$COORDBENCH_CONFIGS` when set, else the copy shipped
as package data (`coordbench/resources/configs`, a symlink to the repo's top-level `configs/`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from coordbench.config.options import GenerationParams
from coordbench.config.prompts import PromptPreset
from coordbench.errors import ConfigError

KINDS = ("rescale", "prompt", "decode", "task")
RESIZE_ALGORITHMS = ("current", "legacy")  # [UP-RESIZE]: since f1ddc63 / Qwen2-VL style before


@dataclass(frozen=True)
class RescalePreset:
    """Smart-resize settings [UP-RESIZE]; `budget` U gives `max_pixels = factor² · U`."""

    name: str
    factor: int = 32
    budget: int = 768
    min_pixels: int = 32 * 32 * 4  # upstream default; kept for API compatibility, must be <= max
    algorithm: str = "current"

    @property
    def max_pixels(self) -> int:
        return self.factor * self.factor * self.budget


# kind -> {key: (type, required)}; `float` keys also take TOML integers.
_SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "rescale": {
        "name": (str, False),
        "factor": (int, True),
        "budget": (int, True),
        "min_pixels": (int, False),
        "algorithm": (str, False),
    },
    "prompt": {
        "name": (str, False),
        "ordering": (str, False),
        "coord_mode": (str, False),
        "variant": (str, False),
        "field_order": (str, False),
        "bbox_format": (str, False),
        "layout": (str, False),
        "dialect": (str, False),
        "classes": (str, False),
    },
    "task": {
        "name": (str, False),
        "kind": (str, True),  # the implementation in coordbench.tasks.TASKS
        "description": (str, False),
        "prompt": (str, False),  # the prompt preset used when --prompt is not given
        "data": (str, False),  # default --data under the data root; {preset} is the preset
        "data_hint": (str, False),  # how to build the default data; {preset} likewise
        "default_preset": (str, False),  # the rescale preset used when --preset is not given
        "embedded": (bool, False),  # no --ckpt, no --data: the embedded shapes model and data
        "members": (list, False),  # a benchmark group's member data sets ({member} in `data`)
        "protocol": (dict, False),  # protocol options and their defaults (in the identity)
    },
    "decode": {
        "name": (str, False),
        "temperature": (float, True),
        "top_p": (float, False),
        "top_k": (int, False),
        "max_new_tokens": (int, False),
        "repetition_penalty": (float, False),
        "seed": (int, False),
    },
}


def configs_dir() -> Path:
    """`$COORDBENCH_CONFIGS`, else the presets shipped as package data.

    In a checkout `coordbench/resources/configs` is a symlink to the top-level `configs/` (the one
    copy that is edited); resolving it names that folder, as before. An installed wheel holds a
    real copy in site-packages.
    """
    env = os.environ.get("COORDBENCH_CONFIGS")
    if env:
        return Path(env)
    return Path(str(resources.files("coordbench") / "resources" / "configs")).resolve()


def list_presets(kind: str) -> list[str]:
    """Names of the presets of one kind, sorted."""
    if kind not in KINDS:
        raise ConfigError(f"expected `kind` to be one of {KINDS} but got {kind!r}")
    folder = configs_dir() / kind
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_rescale_preset(name: str) -> RescalePreset:
    data, path = _load("rescale", name)
    kw = {k: v for k, v in data.items() if k != "name"}
    preset = RescalePreset(name=data.get("name", path.stem), **kw)
    if preset.algorithm not in RESIZE_ALGORITHMS:
        raise ConfigError(
            f"{path}: expected `algorithm` to be one of {RESIZE_ALGORITHMS} "
            f"but got {preset.algorithm!r}"
        )
    if preset.factor < 1 or preset.budget < 1:
        raise ConfigError(f"{path}: `factor` and `budget` must be >= 1")
    if not 0 < preset.min_pixels <= preset.max_pixels:
        raise ConfigError(
            f"{path}: need 0 < min_pixels <= max_pixels ({preset.max_pixels}), "
            f"got {preset.min_pixels}"
        )
    return preset


def load_prompt_preset(name: str) -> PromptPreset:
    data, path = _load("prompt", name)
    kw = {k: v for k, v in data.items() if k != "name"}
    try:
        return PromptPreset(name=data.get("name", path.stem), **kw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


@dataclass(frozen=True)
class TaskPreset:
    """A task preset (`configs/task/NAME.toml`): which implementation, and its defaults."""

    name: str
    kind: str
    description: str = ""
    prompt: str | None = None
    data: str | None = None
    data_hint: str | None = None
    default_preset: str | None = None
    embedded: bool = False
    # a benchmark group (ODinW-13): the member data sets, each run as its own run dir; `data`
    # then names a member's file with `{member}` (and `{preset}`) [ARCH-GROUPS]
    members: list[str] | None = None
    # the protocol options a run of this task records in its identity, with their defaults
    protocol: dict[str, Any] | None = None


def load_task_preset(name: str) -> TaskPreset:
    data, path = _load("task", name)
    return TaskPreset(name=data.pop("name", path.stem), **data)


def load_decode_preset(name: str) -> dict[str, Any]:
    """Decode parameters (no `name`), ready for `dataclasses.replace(run_config, **params)`."""
    data, path = _load("decode", name)
    params = {k: v for k, v in data.items() if k != "name"}
    try:  # the values are checked by their owner, GenerationParams
        replace(GenerationParams(), **params).check(ConfigError)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return params


# --------------------------------------------------------------------------- loading


def _resolve(kind: str, name: str) -> Path:
    if name.endswith(".toml") or "/" in name or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"{kind} preset file not found: {name}")
        return path
    path = configs_dir() / kind / f"{name}.toml"
    if not path.is_file():
        available = list_presets(kind)
        raise ConfigError(
            f"unknown {kind} preset {name!r}; available: {', '.join(available) or 'none'} "
            f"(in {configs_dir() / kind}; or pass a path to a .toml file)"
        )
    return path


def _load(kind: str, name: str) -> tuple[dict[str, Any], Path]:
    """Read, then validate keys and types against the kind's schema."""
    path = _resolve(kind, str(name))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {kind} preset {path}: {e}") from None
    schema = _SCHEMA[kind]
    for key in data:
        if key not in schema:
            raise ConfigError(f"{path}: unknown key {key!r}; allowed keys: {', '.join(schema)}")
    for key, (typ, required) in schema.items():
        if key not in data:
            if required:
                raise ConfigError(f"{path}: missing required key {key!r}")
            continue
        data[key] = _typed(data[key], typ, key, path)
    if "name" in data and data["name"] != path.stem:
        raise ConfigError(
            f"{path}: `name` = {data['name']!r} must equal the file name {path.stem!r}"
        )
    return data, path


def _typed(value: Any, typ: type, key: str, path: Path) -> Any:
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: `{key}` must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float) if typ is float else typ):
        raise ConfigError(f"{path}: `{key}` must be {typ.__name__}, got {value!r}")
    return float(value) if typ is float else value
