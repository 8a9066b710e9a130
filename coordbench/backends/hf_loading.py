"""Load model, LoRA adapter and processor from a preflighted checkpoint (see `hf_checkpoint`)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from coordbench.backends.hf_checkpoint import (
    PROCESSOR_FILES,
    CheckpointFiles,
    read_json,
)
from coordbench.errors import CheckpointError

log = logging.getLogger(__name__)

# Hub model types -> processor class, for the fallback when AutoProcessor cannot be built
# (transformers' PROCESSOR_MAPPING_NAMES is consulted for anything else).
PROCESSOR_CLASSES = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
    "qwen3_vl_moe": "Qwen3VLProcessor",
    "internvl": "InternVLProcessor",
    "gemma3": "Gemma3Processor",
    "paligemma": "PaliGemmaProcessor",
}
DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """device auto = cuda if available; dtype auto = bf16 on CUDA, fp32 on CPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise CheckpointError(
            f"expected `dtype` to be one of ('auto', {', '.join(map(repr, DTYPES))}) "
            f"but got {dtype!r}"
        )
    return device, DTYPES[dtype]


# Small models on CPU: one intra-op thread. Their matmuls are too small to split well, and extra
# threads spin-wait on cores that other jobs share (measured in README "Throughput and
# determinism": the embedded run is several times slower with torch's default on a loaded box).
SMALL_MODEL_PARAMS = 100_000_000


def choose_threads(requested: int | None, device: str, n_params: int) -> int:
    """torch intra-op threads: `requested` if given; 1 for a small model on CPU; else torch's."""
    import torch

    if requested is not None:
        return requested
    if device == "cpu" and n_params < SMALL_MODEL_PARAMS:
        return 1
    return torch.get_num_threads()


def _model_classes():
    import transformers

    names = ("AutoModelForImageTextToText", "AutoModelForVision2Seq")
    return [getattr(transformers, n) for n in names if hasattr(transformers, n)]


def _is_attn_error(exc: Exception, impl: str) -> bool:
    msg = str(exc).lower()
    return impl.lower() in msg or "attn" in msg or "attention" in msg


def load_model(
    files: CheckpointFiles,
    *,
    dtype: str,
    device: str,
    attn_implementation: str,
    trust_remote_code: bool,
):
    """(model in eval mode on `device`, attention implementation that loaded)."""
    import torch

    candidates = list(dict.fromkeys([attn_implementation, "sdpa", "eager"]))
    last: Exception | None = None
    for cls in _model_classes():
        for impl in candidates:
            try:
                model, info = cls.from_pretrained(
                    str(files.path),
                    dtype=getattr(torch, dtype),
                    attn_implementation=impl,
                    trust_remote_code=trust_remote_code,
                    use_safetensors=files.safetensors,
                    local_files_only=True,
                    output_loading_info=True,
                )
            except (ImportError, ValueError) as exc:
                last = exc
                if "unrecognized configuration class" in str(exc).lower():
                    break  # try the next auto class
                if not _is_attn_error(exc, impl):
                    raise CheckpointError(
                        f"cannot load model from {files.path}: {_one_line(exc)}"
                    ) from exc
                log.warning(
                    "attention %r unavailable (%s); trying the next one", impl, _one_line(exc)
                )
                continue
            except (OSError, RuntimeError, KeyError, TypeError) as exc:
                raise CheckpointError(
                    f"cannot load model from {files.path}: {_one_line(exc)}"
                ) from exc
            check_loading_info(files.path, info)
            return model.to(device).eval(), impl
    raise CheckpointError(f"cannot load model from {files.path}: {_one_line(last)}")


def check_loading_info(path, info: dict) -> None:
    """Refuse a checkpoint whose weights do not match its architecture: a missing tensor would
    be re-initialised at random (and the run would score noise with exit 0), an unexpected or
    mis-shaped one means another model. Tied weights (lm_head = embed_tokens) are not missing
    for transformers, which ties them after loading."""
    problems = []
    for key, what in (
        ("missing_keys", "missing (would be randomly initialised)"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "of the wrong shape"),
    ):
        keys = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or [])
        if keys:
            more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
            problems.append(f"{len(keys)} weight(s) {what}: {', '.join(keys[:5])}{more}")
    if problems:
        raise CheckpointError(
            f"{path}: the weights do not match the architecture in config.json: "
            + "; ".join(problems)
        )


def merge_adapter(model, adapter_dir: Path, tokenizer):
    """Merge a LoRA adapter (peft) into the base weights, resizing embeddings for added tokens."""
    try:
        from peft import PeftModel
    except ImportError:
        raise CheckpointError(
            f"LoRA adapter {adapter_dir} needs peft: pip install 'coordbench[lora]'"
        ) from None
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    try:
        merged = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        return merged.merge_and_unload().eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"cannot merge adapter {adapter_dir}: {_one_line(exc)}") from exc


def _one_line(exc: Exception | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    return " ".join(text.split())[:300]


def read_chat_template(path: Path) -> str | None:
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    if (path / "chat_template.json").is_file():
        return read_json(path / "chat_template.json").get("chat_template")
    return None


@contextlib.contextmanager
def _video_processor_optional():
    """Let a Qwen processor be built with `video_processor=None` when torchvision is absent.

    Without torchvision, `ProcessorMixin.check_argument_for_proper_class` cannot resolve the video
    processor class and raises AttributeError [ARCH-PROCESSOR]; skip the check
    for a None video argument only, for the duration of the construction.
    """
    from transformers.processing_utils import ProcessorMixin

    original = ProcessorMixin.check_argument_for_proper_class

    def check(self, argument_name, argument):
        if argument is None and "video" in argument_name:
            return None
        return original(self, argument_name, argument)

    ProcessorMixin.check_argument_for_proper_class = check
    try:
        yield
    finally:
        ProcessorMixin.check_argument_for_proper_class = original


def _processor_class_name(files: CheckpointFiles) -> str:
    for name in PROCESSOR_FILES + ("tokenizer_config.json",):
        f = files.path / name
        if f.is_file():
            cls = read_json(f).get("processor_class")
            if cls:
                return str(cls)
    if files.model_type in PROCESSOR_CLASSES:
        return PROCESSOR_CLASSES[files.model_type]
    try:
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    except ImportError:  # pragma: no cover - layout of older transformers
        PROCESSOR_MAPPING_NAMES = {}
    if PROCESSOR_MAPPING_NAMES.get(files.model_type):
        return str(PROCESSOR_MAPPING_NAMES[files.model_type])
    raise CheckpointError(
        f"{files.path}: cannot tell which processor class model_type {files.model_type!r} uses"
    )


def fallback_processor(files: CheckpointFiles, tokenizer_dir: Path, trust_remote_code: bool):
    """Tokenizer + image processor + the family's processor class with `video_processor=None`."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(
        str(tokenizer_dir), local_files_only=True, trust_remote_code=trust_remote_code
    )
    improc = transformers.AutoImageProcessor.from_pretrained(
        str(files.path), local_files_only=True, trust_remote_code=trust_remote_code
    )
    name = _processor_class_name(files)
    cls = getattr(transformers, name, None)
    if cls is None:
        raise CheckpointError(
            f"{files.path}: processor class {name!r} is not in transformers "
            f"{transformers.__version__}"
        )
    template = (
        read_chat_template(tokenizer_dir) or read_chat_template(files.path) or tok.chat_template
    )
    with _video_processor_optional():
        return cls(
            image_processor=improc, tokenizer=tok, video_processor=None, chat_template=template
        )


def load_processor(
    files: CheckpointFiles, *, tokenizer_dir: Path | None = None, trust_remote_code: bool = False
):
    """(processor, "auto" | "fallback"): AutoProcessor first, else [ARCH-PROCESSOR]'s fallback."""
    import transformers

    tokenizer_dir = tokenizer_dir or files.path
    proc, how = None, "auto"
    try:
        proc = transformers.AutoProcessor.from_pretrained(
            str(files.path), local_files_only=True, trust_remote_code=trust_remote_code
        )
        if tokenizer_dir != files.path:  # an adapter that ships its own (extended) tokenizer
            proc.tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(tokenizer_dir), local_files_only=True, trust_remote_code=trust_remote_code
            )
    except (ImportError, AttributeError, OSError, ValueError, TypeError, KeyError) as exc:
        log.info("AutoProcessor failed for %s (%s); using the fallback", files.path, _one_line(exc))
        proc = None
    if proc is None or not hasattr(proc, "image_processor") or not hasattr(proc, "tokenizer"):
        how = "fallback"
        try:
            proc = fallback_processor(files, tokenizer_dir, trust_remote_code)
        except CheckpointError:
            raise
        except (ImportError, AttributeError, OSError, ValueError, TypeError, KeyError) as exc:
            if "torchvision" in str(exc).lower():
                raise CheckpointError(
                    f"cannot load the processor of {files.path} (model_type "
                    f"{files.model_type!r}): it needs torchvision, which does not import here "
                    "and has no PIL fallback in this transformers; install a torchvision build "
                    f"that matches torch ({_one_line(exc)})"
                ) from exc
            raise CheckpointError(
                f"cannot load the processor of {files.path}: {_one_line(exc)}"
            ) from exc
    proc.tokenizer.padding_side = "left"  # batched prefill is left padded [ARCH-GENERATION]
    if proc.tokenizer.pad_token_id is None:  # upstream: pad = eos when missing [UP-MODEL-LOADING]
        proc.tokenizer.pad_token = proc.tokenizer.eos_token
    return proc, how


def versions() -> dict[str, Any]:
    """Library versions and accelerator, for provenance."""
    import importlib.metadata as md

    import torch
    import transformers

    out: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
    }
    for pkg in ("accelerate", "peft", "safetensors"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
