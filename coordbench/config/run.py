"""RunConfig: everything a run needs, resolved once; its identity hash decides resume vs refuse."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from coordbench import __version__
from coordbench.config.options import (
    ConfidenceOptions,
    EvalOptions,
    GenerationParams,
    ParseOptions,
)
from coordbench.config.presets import TaskPreset, load_task_preset
from coordbench.errors import ArtifactError, ConfigError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent
# A source checkout (editable install, PYTHONPATH) has pyproject.toml beside the package; an
# installed wheel sits in site-packages, where there is none.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
EMBEDDED_CKPT = PACKAGE_DIR / "embedded" / "shapes-qwen25vl"
# Package data; in a checkout `resources/shapes` is a symlink to the top-level
# `public_data/shapes/`, so the resolved path names that folder there, as before.
EMBEDDED_DATA = Path(
    str(resources.files("coordbench") / "resources" / "shapes" / "val.coord.jsonl")
).resolve()
EMBEDDED_PRESET = "64"
EMBEDDED_PROMPT = "default_desc_first"
# Beside a checkpoint's config.json: what it was trained with ({"prompt": "default_desc_first"}).
# Not weights: the checkpoint fingerprint leaves it out (pipeline/plan.py).
CHECKPOINT_META = "coordbench.json"
_GEN, _PARSE, _CONF, _EVAL = GenerationParams(), ParseOptions(), ConfidenceOptions(), EvalOptions()


def user_data_root() -> Path:
    """Where user-built data (`public_data/coco/...` from `coordbench data coco`) lives.

    A checkout keeps it in its own top-level `public_data/` (whatever the working directory); an
    installed wheel has no such folder, so it is `./public_data/` of the current working directory.
    """
    return REPO_ROOT if IN_CHECKOUT else Path.cwd()


@dataclass(frozen=True)
class Shard:
    """`--shard i/N`: this job takes samples whose dataset index % N == i (upstream convention)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None, env: Mapping[str, str] | None = None) -> Shard:
        """`i/N` (0-based: 0/8 .. 7/8) or `auto` (from a SLURM job array's environment)."""
        if not text:
            return cls()
        if text.strip().lower() == "auto":
            return cls.from_slurm(env if env is not None else {})
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard must look like i/N (e.g. 0/8), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise ConfigError(
                f"--shard {text}: shards count from 0, need 0 <= i < N and N >= 1 "
                f"(e.g. 0/{max(n, 1)} .. {max(n, 1) - 1}/{max(n, 1)})"
            )
        return cls(i, n)

    @classmethod
    def from_slurm(cls, env: Mapping[str, str]) -> Shard:
        """The shard of this SLURM array task: the task's position among the array's tasks, so
        `--array=0-7` and `--array=1-8` (and `0-14:2`) both give shards 0/8 .. 7/8."""

        def num(key: str) -> int | None:
            v = env.get(key)
            try:
                return int(v) if v not in (None, "") else None
            except ValueError:
                raise ConfigError(f"--shard auto: {key}={v!r} is not an integer") from None

        task, count = num("SLURM_ARRAY_TASK_ID"), num("SLURM_ARRAY_TASK_COUNT")
        lo, hi, step = (num(f"SLURM_ARRAY_TASK_{k}") for k in ("MIN", "MAX", "STEP"))
        if task is None:
            raise ConfigError(
                "--shard auto needs SLURM_ARRAY_TASK_ID (run it inside `sbatch --array=...`), "
                "or pass --shard i/N with 0 <= i < N"
            )
        if lo is not None and hi is not None:
            step = step or 1
            span = (hi - lo) // step + 1
            if count is not None and count != span:
                raise ConfigError(
                    f"--shard auto: the array {lo}-{hi}:{step} is not a plain range "
                    f"({count} tasks); use --array=0-{count - 1} or --shard i/N"
                )
            index, count = (task - lo) // step, span
        elif count is None:
            raise ConfigError(
                "--shard auto needs SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN/MAX "
                f"besides SLURM_ARRAY_TASK_ID={task}"
            )
        else:
            index = task
        if not 0 <= index < count:
            raise ConfigError(
                f"--shard auto: SLURM_ARRAY_TASK_ID={task} is outside 0..{count - 1}; "
                "set SLURM_ARRAY_TASK_MIN/MAX or use a 0-based --array=0-N"
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class RunConfig:
    ckpt: str | None = None  # None = the embedded default model
    adapter: str | None = None
    data: str | None = None  # None = the preset's default data (embedded shapes for the default)
    image_root: str | None = None  # absolute image paths are allowed under it (not identity)
    preset: str | None = None
    prompt: str | None = None
    limit: int | None = None
    batch_size: int = 8
    # decoding, parsing, confidence and scoring fields take their defaults from their option
    # type (config/options.py), which also validates them; run.json keeps this flat layout
    temperature: float = _GEN.temperature
    top_p: float = _GEN.top_p
    top_k: int = _GEN.top_k
    repetition_penalty: float = _GEN.repetition_penalty
    max_new_tokens: int = _GEN.max_new_tokens
    seed: int = _GEN.seed
    logprobs: str = _GEN.logprobs  # batched | per-sample (hf backend only)
    out: str = "output/runs"
    name: str | None = None
    backend: str = "hf"  # hf | vllm | replay:RUN_DIR | openai:URL (an OpenAI-compatible server)
    served_model: str | None = None  # openai: the model name the server serves
    concurrency: int = 8  # openai: requests in flight at once (at most --batch-size)
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None  # torch CPU threads; None = 1 for small models on CPU (provenance)
    scorer: str = _EVAL.scorer
    semantic_threshold: float = _EVAL.semantic_threshold
    logprob_source: str = _CONF.logprob_source
    keep_truncated_numeric_objects: bool = _PARSE.keep_truncated_numeric_objects
    trust_remote_code: bool = False
    allow_pickle: bool = False
    overwrite: bool = False
    shard: Shard = field(default_factory=Shard)
    progress: bool = True
    task: str = "detection"  # a task preset, configs/task/NAME.toml (the benchmark)
    # protocol options of a task that declares them (ODinW: prompt mode, box score, COCOeval
    # maxDets as "100,300,1000"); None = the task preset's default. In the identity only for
    # such a task, so a detection identity is unchanged
    prompt_mode: str | None = None
    box_score: str | None = None
    max_dets: str | None = None

    def task_preset(self) -> TaskPreset:
        return load_task_preset(self.task)

    def resolved(self) -> RunConfig:
        """Fill defaults: no --ckpt and no --data means the embedded default, end to end; the
        task preset gives the default prompt, data and rescale preset otherwise."""
        tp = self.task_preset()
        embedded = self.ckpt is None
        ckpt = self.ckpt or str(EMBEDDED_CKPT)
        shapes = embedded and self.data is None and tp.embedded  # the embedded default data
        preset = self.preset or (EMBEDDED_PRESET if shapes else tp.default_preset or "768")
        if self.data is not None:
            data = self.data
        elif tp.embedded and preset == EMBEDDED_PRESET:
            data = str(EMBEDDED_DATA)
        elif tp.data is None:
            raise ConfigError(f"task {self.task!r} has no default data set: pass --data")
        else:
            data = str(user_data_root() / tp.data.format(preset=preset))
        prompt = (
            self.prompt
            or checkpoint_prompt(ckpt, self.task)
            or (EMBEDDED_PROMPT if embedded and tp.embedded else tp.prompt)
        )
        if prompt is None:
            raise ConfigError(f"task {self.task!r} has no default prompt preset: pass --prompt")
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"--limit must be >= 0, got {self.limit}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(
                f"--threads must be between 1 and {MAX_THREADS} (this machine has "
                f"{os.cpu_count()} CPU cores), got {self.threads}"
            )
        check_device(self.device)
        check_backend(self.backend)
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        self.generation_params().check(ConfigError)
        if self.logprobs != "batched" and self.backend != "hf":
            raise ConfigError(f"--logprobs {self.logprobs} needs --backend hf")
        check_run_name(self.name, "--name")
        self.confidence_options()  # each option type validates itself on construction
        self.eval_options()
        return replace(self, ckpt=ckpt, preset=preset, data=data, prompt=prompt)

    def generation_params(self) -> GenerationParams:
        return GenerationParams(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            logprobs=self.logprobs,
        )

    def parse_options(self, field_order: str) -> ParseOptions:
        """Parse options; the field order is the prompt preset's."""
        return ParseOptions(
            field_order=field_order,
            keep_truncated_numeric_objects=self.keep_truncated_numeric_objects,
        )

    def confidence_options(self) -> ConfidenceOptions:
        return ConfidenceOptions(logprob_source=self.logprob_source)

    def eval_options(self) -> EvalOptions:
        return EvalOptions(scorer=self.scorer, semantic_threshold=self.semantic_threshold)

    def default_name(self) -> str:
        if self.backend.startswith("openai:"):
            ck = re.sub(r"[^A-Za-z0-9._-]+", "-", self.served_model or "served").strip("-.")
        else:
            ck = Path(self.ckpt or EMBEDDED_CKPT).name
        t = "greedy" if self.temperature == 0 else f"t{self.temperature:g}"
        return f"{ck}_{self.preset}_{self.prompt}_{t}_s{self.seed}"

    def run_dir(self) -> Path:
        name = self.name or self.default_name()
        check_run_name(name, "--name" if self.name else "the default run name")
        return Path(self.out) / name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shard"] = str(self.shard)
        d["backend"] = redact_backend(self.backend)  # never a URL's credentials in run.json
        return d


def checkpoint_prompt(ckpt: str | Path | None, task: str = "detection") -> str | None:
    """The prompt preset a checkpoint says it was trained with for `task` (`coordbench.json`
    beside its config.json: `{"prompt": NAME}` for the task it names in `task`, detection when
    it names none, or `{"prompts": {TASK: NAME}}`), else None. A model asked in a prompt it never
    saw answers garbage that reads as a bad model, so `run` uses this preset when --prompt is not
    given; a detection prompt is never used for another task."""
    if ckpt is None:
        return None
    path = Path(ckpt) / CHECKPOINT_META
    if not path.is_file():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        return None
    by_task = data.get("prompts")
    if isinstance(by_task, dict):
        prompt = by_task.get(task)
    else:
        prompt = data.get("prompt") if data.get("task", "detection") == task else None
    if prompt is None:
        return None
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{path}: `prompt` must be a prompt preset name, got {prompt!r}")
    return prompt


def redact_backend(backend: str) -> str:
    """`openai:URL` without user:password@ or a query string (tokens live there); others as is."""
    if not backend.startswith("openai:"):
        return backend
    parts = urlsplit(backend.split(":", 1)[1])
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return "openai:" + urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_backend(backend: str) -> None:
    if backend in ("hf", "vllm") or backend.startswith("replay:"):
        return
    if backend.startswith("openai:") and urlsplit(backend[7:]).scheme in ("http", "https"):
        return
    raise ConfigError(
        f"--backend {redact_backend(backend)!r}: expected hf, vllm, replay:RUN_DIR or "
        "openai:http(s)://HOST:PORT/v1"
    )


MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))  # more only fails deep in torch/tokenizers
_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")


def check_device(device: str) -> None:
    """--device is auto, cpu, cuda, cuda:N or mps (whether CUDA is there is checked before the
    run dir is touched, by the backend's preflight)."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(
            f"--device {device!r} is not supported: use auto, cpu, cuda, cuda:N or mps"
        )


def check_run_name(name: str | None, flag: str = "--name") -> None:
    """A run name is one safe path component, so a run dir is always a direct child of --out:
    no separator, no `.`/`..`, no control characters, not absolute. A name like `..` would put
    the run (and --overwrite's clearing) in the parent of --out. [ARCH-SAFETY]"""
    if name is None:
        return
    bad = None
    if not isinstance(name, str) or not name.strip():
        bad = "it is empty"
    elif name in (".", ".."):
        bad = "it names the folder itself or its parent"
    elif "/" in name or "\\" in name or os.sep in name:
        bad = "it holds a path separator (a run name is one folder name)"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        bad = "it holds a control character"
    elif len(name.encode()) > 255:
        bad = "it is longer than 255 bytes"
    if bad:
        raise ConfigError(f"{flag} {name!r} is not a safe run name: {bad}")


def canonical_json(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity)).hexdigest()


def hash_files(paths: list[Path]) -> str:
    """Content hash of files (name + bytes), streamed; used for checkpoint identity."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def package_version() -> str:
    return __version__


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def config_from_run_json(head: Any, path: Path) -> RunConfig:
    """The RunConfig a run was made with, from its parsed run.json, type-checked field by field."""
    data = head.get("config", {}) if isinstance(head, dict) else None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected an object with a `config` object")
    fields = RunConfig.__dataclass_fields__
    kw = {k: v for k, v in data.items() if k in fields and k != "shard"}
    for k, v in kw.items():
        if not _fits(v, fields[k].default):
            raise ArtifactError(f"{path}: config.{k} has the wrong type: {v!r}")
    shard = data.get("shard")
    return RunConfig(**kw, shard=Shard.parse(shard if isinstance(shard, str) else None))


def _fits(value: Any, default: Any) -> bool:
    """Whether a run.json value can stand in for a RunConfig field with this default."""
    if default is None:  # optional fields (ckpt, data, limit, ...): None, a str or an int
        return value is None or (isinstance(value, str | int) and not isinstance(value, bool))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default)) and not isinstance(value, bool)
