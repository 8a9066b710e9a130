"""Resolve a run before any model is loaded: config, presets, samples, identity hash."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench.backends.hf_checkpoint import inspect_adapter, inspect_checkpoint
from coordbench.backends.registry import cuda_available
from coordbench.backends.served import server_info
from coordbench.config.options import GenerationParams
from coordbench.config.presets import load_prompt_preset, load_rescale_preset
from coordbench.config.prompts import PromptPreset, prompt_template_hash
from coordbench.config.run import (
    CHECKPOINT_META,
    RunConfig,
    checkpoint_prompt,
    hash_files,
    identity_hash,
    package_version,
)
from coordbench.data.dataset import (
    dataset_fingerprint,
    dataset_vocabulary,
    image_sizes,
    load_samples,
)
from coordbench.errors import CheckpointError, ConfigError, CoordbenchError, DataError
from coordbench.rundir.layout import TRACE
from coordbench.tasks import Task, get_task, task_identity, with_protocol
from coordbench.types import Sample

log = logging.getLogger("coordbench")


@dataclass
class Plan:
    """Everything resolved before any model is loaded."""

    cfg: RunConfig
    rescale: Any
    prompt: Any
    samples: list[Sample]
    identity: dict[str, Any]
    identity_hash: str
    params: GenerationParams
    image_bytes: dict[str, int]  # per sample; checked for finished samples on resume
    task: Task
    vocabulary: list[str] | None  # the data set's categories, in order (categories.json)


# weights, configs, chat templates and the tokenizer files that are not JSON (they change token ids)
FINGERPRINT_SUFFIXES = (".safetensors", ".json", ".jinja")
FINGERPRINT_NAMES = ("merges.txt", "tokenizer.model")


def _fingerprint_files(root: Path) -> list[Path]:
    files = [
        p
        for p in root.iterdir()
        if p.is_file()
        and (p.suffix in FINGERPRINT_SUFFIXES or p.name in FINGERPRINT_NAMES)
        and p.name != CHECKPOINT_META  # coordbench's own note (the trained prompt), not weights
    ]
    if not any(p.suffix == ".safetensors" for p in files):  # --allow-pickle: the .bin weights load
        files += [p for p in root.glob("*.bin") if p.is_file()]
    return files


def checkpoint_fingerprint(ckpt: str, adapter: str | None = None) -> str:
    """Content hash of a checkpoint's weights and configs (what changes the numbers)."""
    root = Path(ckpt)
    if not root.is_dir():
        raise CheckpointError(f"checkpoint dir not found: {ckpt}")
    files = _fingerprint_files(root)
    if adapter:
        if not Path(adapter).is_dir():
            raise CheckpointError(f"adapter dir not found: {adapter}")
        files += [p for p in Path(adapter).iterdir() if p.is_file()]
    if not files:
        raise CheckpointError(f"no checkpoint files in {ckpt}")
    return hash_files(files)


def preflight_checkpoint(cfg: RunConfig) -> None:
    """Refuse an unsafe or incomplete checkpoint, or a device this machine lacks, before the
    run dir is touched."""
    if cfg.backend.startswith("replay:"):
        src = Path(cfg.backend.split(":", 1)[1])
        trace = src / TRACE if src.is_dir() else src
        if not trace.is_file():
            raise ConfigError(
                f"--backend {cfg.backend}: no replay source there (a run dir holding "
                f"{TRACE}, or such a trace file): {trace} not found"
            )
    if cfg.backend not in ("hf", "vllm"):
        return
    if cfg.backend == "hf" and cfg.device.startswith("cuda") and not cuda_available():
        raise ConfigError(
            f"--device {cfg.device}: this machine has no CUDA device (or torch is a CPU build); "
            "use --device cpu or auto"
        )
    inspect_checkpoint(
        cfg.ckpt, trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle
    )
    if cfg.adapter:
        inspect_adapter(cfg.adapter, allow_pickle=cfg.allow_pickle)


def check_preset_sizes(samples: list[Sample], rescale: Any, data: str) -> None:
    """Preset images are on the preset's grid and under its pixel budget [UP-RESIZE]."""
    for s in samples:
        if (
            s.width % rescale.factor
            or s.height % rescale.factor
            or s.width * s.height > rescale.max_pixels
        ):
            raise DataError(
                f"{data}: sample {s.sample_id} is {s.width}x{s.height}, "
                f"not a {rescale.name} preset image "
                f"(multiples of {rescale.factor}, <= {rescale.max_pixels} pixels); "
                "build the data with `coordbench data coco --preset ...` "
                "or pass the matching --preset"
            )


def _preflight(config: RunConfig, cfg: RunConfig) -> None:
    """Every missing input at once (checkpoint, adapter, presets, data) in one message, so a
    user fixing the first does not meet the next on the following try."""
    problems: list[tuple[type[CoordbenchError], str]] = []
    if cfg.backend in ("hf", "vllm") and not Path(cfg.ckpt).is_dir():
        problems.append((CheckpointError, f"checkpoint dir not found: {cfg.ckpt}"))
    if cfg.adapter and not Path(cfg.adapter).is_dir():
        problems.append((CheckpointError, f"adapter dir not found: {cfg.adapter}"))
    for load, name in ((load_rescale_preset, cfg.preset), (load_prompt_preset, cfg.prompt)):
        try:
            load(name)
        except ConfigError as e:
            problems.append((ConfigError, str(e)))
    if not Path(cfg.data).exists():
        msg = f"data file not found: {cfg.data}"
        hint = cfg.task_preset().data_hint
        if config.data is None and hint:  # the task's default data has not been built
            msg += (
                f" (the default data of task {cfg.task} for preset {cfg.preset}; build it with "
                f"`{hint.format(preset=cfg.preset)}`, or pass --data)"
            )
        problems.append((DataError, msg))
    if len(problems) == 1:
        raise problems[0][0](problems[0][1])
    if problems:
        raise ConfigError(f"{len(problems)} problems: " + "; ".join(m for _, m in problems))


def _warn_prompt(config: RunConfig, cfg: RunConfig) -> None:
    """--prompt differs from the preset the checkpoint says it was trained with."""
    trained = checkpoint_prompt(cfg.ckpt, cfg.task) if cfg.backend in ("hf", "vllm") else None
    if config.prompt and trained and config.prompt != trained:
        log.warning(
            "--prompt %s differs from %s, the prompt preset %s was trained with (its %s); "
            "answers to a prompt the model never saw often read as malformed",
            config.prompt,
            trained,
            Path(cfg.ckpt).name,
            CHECKPOINT_META,
        )


def plan_run(config: RunConfig) -> Plan:
    cfg = config.resolved()
    _warn_prompt(config, cfg)
    _preflight(config, cfg)
    rescale = load_rescale_preset(cfg.preset)
    prompt = load_prompt_preset(cfg.prompt)
    samples = load_samples(cfg.data, limit=cfg.limit, image_root=cfg.image_root)
    if not samples:
        raise DataError(f"no samples to run in {cfg.data} (empty file or --limit 0)")
    check_preset_sizes(samples, rescale, cfg.data)
    task = get_task(cfg.task)
    if task.scorers and cfg.scorer not in task.scorers:
        raise ConfigError(
            f"--scorer {cfg.scorer} does not score task {task.name}; use one of "
            f"{', '.join(task.scorers)}"
        )
    vocabulary = dataset_vocabulary(cfg.data)
    protocol = task.resolve_protocol(cfg, task.options) if task.resolve_protocol else None
    task = with_protocol(task, protocol)
    if task.expand_samples is not None:  # ODinW per_class: one sample per (image, category)
        samples = task.expand_samples(samples, protocol, vocabulary)
    context = task.prompt_context(samples[0], vocabulary)  # the template: the data set's classes
    image_bytes = image_sizes(samples)
    params = cfg.generation_params()
    identity = {
        "package_version": package_version(),
        "checkpoint": checkpoint_identity(cfg),
        "dataset": {
            "path_name": Path(cfg.data).name,
            "sha256": dataset_fingerprint(cfg.data, samples),
            "num_samples": len(samples),
            "limit": cfg.limit,
        },
        "preset": cfg.preset,
        "prompt": {
            "name": cfg.prompt,
            "template_hash": prompt_template_hash(prompt, context),
            "layout": prompt.layout,
            "surface": prompt.surface,
        },
        "decode": params.identity(),
        "seed": params.seed,
        "backend": cfg.backend.split(":", 1)[0]
        if cfg.backend.startswith("openai:")
        else cfg.backend,
        "options": option_identity(cfg, prompt),
        **task_identity(task, protocol),
    }
    return Plan(
        cfg,
        rescale,
        prompt,
        samples,
        identity,
        identity_hash(identity),
        params,
        image_bytes,
        task,
        vocabulary,
    )


def checkpoint_identity(cfg: RunConfig) -> dict[str, Any]:
    """What the numbers come from: the checkpoint's files, or, for a served model, the name it
    is served under, the id the server reports and the engine's version (never the URL: where a
    server runs does not change its answers, and a URL may carry credentials)."""
    if cfg.backend.startswith("openai:"):
        info = server_info(cfg.backend.split(":", 1)[1], cfg.served_model)
        return {
            "served_model": info["served_model"],
            "server_model_id": info["served_model"],
            "engine_version": info["engine_version"],
        }
    return {
        "path_name": Path(cfg.ckpt).name,
        "sha256": checkpoint_fingerprint(cfg.ckpt, cfg.adapter),
        "adapter": Path(cfg.adapter).name if cfg.adapter else None,
    }


def option_identity(cfg: RunConfig, prompt: PromptPreset) -> dict[str, Any]:
    """The identity of each option type, derived from the type itself."""
    return {
        "parse": cfg.parse_options(prompt.field_order).identity(),
        "confidence": cfg.confidence_options().identity(),
        "eval": cfg.eval_options().identity(),
    }
