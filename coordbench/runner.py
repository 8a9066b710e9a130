"""Orchestration of `coordbench run`: resolve, shard, batch, generate, parse, append, resume.

The runner never imports torch itself; backends are created by name, lazily.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench import artifacts as A
from coordbench.config import RunConfig, Shard, hash_files, identity_hash, package_version
from coordbench.errors import CheckpointError, ConfigError, DataError, ResumeError
from coordbench.records import Generation, GenerationParams, GenerationRequest, Sample
from coordbench.seeding import sample_seed

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


# weights, configs, chat templates and the tokenizer files that are not JSON (they change token ids)
FINGERPRINT_SUFFIXES = (".safetensors", ".json", ".jinja")
FINGERPRINT_NAMES = ("merges.txt", "tokenizer.model")


def _fingerprint_files(root: Path) -> list[Path]:
    files = [p for p in root.iterdir() if p.is_file() and (p.suffix in FINGERPRINT_SUFFIXES
                                                            or p.name in FINGERPRINT_NAMES)]  # fmt: skip
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
    """Refuse an unsafe or incomplete checkpoint before the run dir is touched (stdlib checks)."""
    if cfg.backend not in ("hf", "vllm"):
        return
    from coordbench.backends.hf_checkpoint import inspect_adapter, inspect_checkpoint

    inspect_checkpoint(
        cfg.ckpt, trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle
    )
    if cfg.adapter:
        inspect_adapter(cfg.adapter, allow_pickle=cfg.allow_pickle)


def check_preset_sizes(samples: list[Sample], rescale: Any, data: str) -> None:
    """Preset images are on the preset's grid and under its pixel budget (upstream §1.4)."""
    for s in samples:
        if (
            s.width % rescale.factor
            or s.height % rescale.factor
            or s.width * s.height > rescale.max_pixels
        ):
            raise DataError(
                f"{data}: sample {s.sample_id} is {s.width}x{s.height}, not a {rescale.name} preset image "
                f"(multiples of {rescale.factor}, <= {rescale.max_pixels} pixels); "
                "build the data with `coordbench data coco --preset ...` or pass the matching --preset"
            )


def plan_run(config: RunConfig) -> Plan:
    from coordbench.data.dataset import dataset_fingerprint, image_sizes, load_samples
    from coordbench.presets import load_prompt_preset, load_rescale_preset
    from coordbench.prompts import prompt_template_hash

    cfg = config.resolved()
    rescale = load_rescale_preset(cfg.preset)
    prompt = load_prompt_preset(cfg.prompt)
    if not Path(cfg.data).exists():
        raise DataError(f"data file not found: {cfg.data}")
    samples = load_samples(cfg.data, limit=cfg.limit)
    if not samples:
        raise DataError(f"no samples to run in {cfg.data} (empty file or --limit 0)")
    check_preset_sizes(samples, rescale, cfg.data)
    image_bytes = image_sizes(samples)
    params = GenerationParams(
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
    )  # fmt: skip
    identity = {
        "package_version": package_version(),
        "checkpoint": {"path_name": Path(cfg.ckpt).name, "sha256": checkpoint_fingerprint(cfg.ckpt, cfg.adapter),
                       "adapter": Path(cfg.adapter).name if cfg.adapter else None},
        "dataset": {"path_name": Path(cfg.data).name, "sha256": dataset_fingerprint(cfg.data, samples),
                    "num_samples": len(samples), "limit": cfg.limit},
        "preset": cfg.preset,
        "prompt": {"name": cfg.prompt, "template_hash": prompt_template_hash(prompt), "layout": prompt.layout,
                   "surface": prompt.surface},
        "decode": {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k,
                   "repetition_penalty": cfg.repetition_penalty, "max_new_tokens": cfg.max_new_tokens},
        "seed": cfg.seed,
        "backend": cfg.backend,
        "options": option_identity(cfg),
    }  # fmt: skip
    return Plan(
        cfg, rescale, prompt, samples, identity, identity_hash(identity), params, image_bytes
    )


def parse_options(cfg: RunConfig, prompt: Any):
    from coordbench.parse import ParseOptions

    return ParseOptions(field_order=prompt.field_order,
                        keep_truncated_numeric_objects=cfg.keep_truncated_numeric_objects)  # fmt: skip


def confidence_options(cfg: RunConfig):
    from coordbench.confidence import ConfidenceOptions

    return ConfidenceOptions(logprob_source=cfg.logprob_source)


def eval_options(cfg: RunConfig):
    from coordbench.metrics.evaluate import EvalOptions

    return EvalOptions(scorer=cfg.scorer, semantic_threshold=cfg.semantic_threshold)


def option_identity(cfg: RunConfig) -> dict[str, Any]:
    from coordbench.presets import load_prompt_preset

    prompt = load_prompt_preset(cfg.prompt)
    return {
        "parse": parse_options(cfg, prompt).identity(),
        "confidence": confidence_options(cfg).identity(),
        "eval": eval_options(cfg).identity(),
    }


# --------------------------------------------------------------------------- records


def build_record(sample: Sample, gen: Generation, parsed: Any, surface: str) -> dict[str, Any]:
    """One gt_vs_pred.jsonl line: upstream §5.1 keys in order, then coordbench's own keys."""
    from coordbench.data.dataset import gt_objects
    from coordbench.parse import upstream_modes

    mode, pred_coord_mode = upstream_modes(surface)
    rec: dict[str, Any] = {
        "image": sample.image, "width": sample.width, "height": sample.height,
        "mode": mode, "coord_mode": "pixel", "gt": gt_objects(sample),
        "pred": parsed.pred, "raw_output_json": parsed.raw_output_json,
        "raw_special_tokens": parsed.raw_special_tokens, "raw_ends_with_im_end": parsed.raw_ends_with_im_end,
        "errors": parsed.errors, "error_entries": parsed.error_entries,
    }  # fmt: skip
    if sample.image_id is not None:
        rec["image_id"] = sample.image_id
    if "metadata" in sample.extra:
        rec["metadata"] = sample.extra["metadata"]
    rec.update(
        pred_coord_mode=pred_coord_mode,
        sample_id=sample.sample_id, index=sample.index, raw_text=gen.text,
        parse_status=parsed.status.value, parse_issues=list(parsed.issues),
        finish_reason=gen.finish_reason, n_new_tokens=gen.n_new_tokens, n_prompt_tokens=gen.n_prompt_tokens,
    )  # fmt: skip
    return rec


def build_trace(gen: Generation, line_idx: int) -> dict[str, Any]:
    """One pred_token_trace.jsonl line: upstream §5.2 keys (processed logprobs) plus raw ones."""
    return {
        "line_idx": line_idx, "sample_id": gen.sample_id, "generated_token_text": gen.token_texts,
        "token_logprobs": gen.logprobs_processed, "token_logprobs_raw": gen.logprobs_raw,
        "token_ids": gen.token_ids, "finish_reason": gen.finish_reason, "text": gen.text,
        "n_prompt_tokens": gen.n_prompt_tokens,
    }  # fmt: skip


# --------------------------------------------------------------------------- distribution


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    state: Any = None

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def detect_dist() -> Dist:
    """torchrun / accelerate launch data parallel; PartialState(cpu=True) + gloo without CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != world:  # feasibility §5: silently duplicated work otherwise
        raise ConfigError(
            f"launcher reports WORLD_SIZE={world} but accelerate sees {state.num_processes} processes"
        )
    return Dist(state.process_index, state.num_processes, state.local_process_index, state)


def shard_dir(run_dir: Path, shard: Shard) -> Path:
    return run_dir / "shards" / f"{shard.index:05d}-of-{shard.count:05d}"


# --------------------------------------------------------------------------- backend


def make_backend(cfg: RunConfig, dist: Dist):
    if cfg.backend == "hf":
        from coordbench.backends.hf import HFBackend

        device = cfg.device
        if dist.enabled and device == "auto":
            import torch

            device = f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu"
        return HFBackend(cfg.ckpt, device=device, dtype=cfg.dtype, adapter=cfg.adapter,
                         trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle)  # fmt: skip
    if cfg.backend == "vllm":
        from coordbench.backends.vllm import VLLMBackend

        return VLLMBackend(cfg.ckpt, trust_remote_code=cfg.trust_remote_code)
    if cfg.backend.startswith("replay:"):
        from coordbench.backends.replay import ReplayBackend

        return ReplayBackend(cfg.backend.split(":", 1)[1])
    raise ConfigError(
        f"expected `backend` to be one of ('hf', 'vllm', 'replay:RUN_DIR') but got {cfg.backend!r}"
    )


# --------------------------------------------------------------------------- generation


def generate_into(
    work_dir: Path, plan: Plan, samples: list[Sample], dist: Dist, backend=None
) -> dict:
    """Generate every sample not yet in work_dir, appending per batch; returns timing provenance."""
    from coordbench.data.dataset import open_image
    from coordbench.parse import parse_output
    from coordbench.prompts import build_messages

    cfg = plan.cfg
    done, _ = A.consistent_prefix(work_dir, cfg.batch_size, len(samples))
    done_ids = {r["sample_id"] for r in done}
    todo = [s for s in samples if s.sample_id not in done_ids]
    timing: dict[str, Any] = {"resumed_from": len(done), "generated": len(todo)}
    if not todo:
        return timing
    t0 = time.perf_counter()
    backend = backend or make_backend(cfg, dist)
    timing["load_seconds"] = round(time.perf_counter() - t0, 3)
    popts = parse_options(cfg, plan.prompt)
    recs_out, traces_out = A.Appender(work_dir / A.GT_VS_PRED), A.Appender(work_dir / A.TRACE)
    line_idx = len(done)
    bar = _progress(len(samples), len(done), cfg.progress and dist.rank == 0, work_dir)
    t1 = time.perf_counter()
    try:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            reqs = [
                GenerationRequest(s.sample_id, build_messages(plan.prompt, open_image(s)), None,
                                  sample_seed(cfg.seed, s.sample_id))
                for s in batch
            ]  # fmt: skip
            gens = backend.generate(reqs, plan.params)
            recs, traces = [], []
            for s, g in zip(batch, gens, strict=True):
                parsed = parse_output(g.text, surface=plan.prompt.surface, width=s.width, height=s.height,
                                      options=popts, finished=g.finish_reason != "length")  # fmt: skip
                traces.append(build_trace(g, line_idx))
                recs.append(build_record(s, g, parsed, plan.prompt.surface))
                line_idx += 1
            traces_out.append(traces)  # trace first: a record is complete only with its trace
            recs_out.append(recs)
            bar.update(len(batch))
    finally:
        bar.close()
        recs_out.close()
        traces_out.close()
        stats = getattr(backend, "stats", None)
        if stats is not None:
            timing.update(_stats_dict(stats))
        timing["generate_seconds"] = round(time.perf_counter() - t1, 3)
        if hasattr(backend, "info"):
            timing["backend"] = {"name": backend.info.name, "device": backend.info.device,
                                 "dtype": backend.info.dtype, **backend.info.provenance}  # fmt: skip
        backend.close()
    return timing


def _stats_dict(stats: Any) -> dict[str, Any]:
    d = {k: getattr(stats, k) for k in ("prefill_tokens", "prefill_seconds", "decode_tokens",
                                        "decode_seconds", "oom_retries")}  # fmt: skip
    if stats.prefill_seconds:
        d["prefill_tokens_per_s"] = round(stats.prefill_tokens / stats.prefill_seconds, 1)
    if stats.decode_seconds:
        d["decode_tokens_per_s"] = round(stats.decode_tokens / stats.decode_seconds, 1)
    return d


def _progress(total: int, initial: int, enabled: bool, work_dir: Path):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="img", dynamic_ncols=True,
                desc=f"generate {work_dir.name}", smoothing=0.1)  # fmt: skip


# --------------------------------------------------------------------------- entry point


def _prepare_dir(work_dir: Path, plan: Plan, overwrite: bool, extra: dict[str, Any]) -> bool:
    if overwrite and work_dir.exists():
        for p in work_dir.iterdir():
            if p.name != A.LOCK:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    A.remove_stale_temps(work_dir)
    resumed = A.check_resume(work_dir, plan.identity, plan.identity_hash)
    if not resumed:
        for name in (A.GT_VS_PRED, A.TRACE):  # stale files of an aborted, identity-less start
            (work_dir / name).unlink(missing_ok=True)
        A.write_json(work_dir / A.RUN_JSON, run_json(plan, extra))
    else:
        _check_finished_images(work_dir, plan)
    return resumed


def _check_finished_images(work_dir: Path, plan: Plan) -> None:
    """Refuse to resume when an image behind a finished record changed on disk; then record the
    current sizes, so a repaired image of an unfinished sample is accepted from here on."""
    data = A.read_json(work_dir / A.RUN_JSON)
    old = data.get("image_bytes") if isinstance(data, dict) else None
    if isinstance(old, dict):
        by_id = {s.sample_id: s for s in plan.samples}
        path = work_dir / A.GT_VS_PRED
        done, _ = A.parse_jsonl_lenient(path.read_bytes() if path.exists() else b"")
        for rec in done:
            sid = rec.get("sample_id")
            if sid in by_id and sid in old and old[sid] != plan.image_bytes.get(sid):
                raise ResumeError(
                    f"image {by_id[sid].image_path} changed on disk ({old[sid]} -> {plan.image_bytes.get(sid)} "
                    f"bytes) after sample {sid} was generated; restore it, or pass --overwrite to start afresh"
                )
    if old != plan.image_bytes:
        data["image_bytes"] = plan.image_bytes
        A.write_json(work_dir / A.RUN_JSON, data)


def run_json(plan: Plan, provenance: dict[str, Any]) -> dict[str, Any]:
    from coordbench.provenance import base_provenance

    return {
        "identity_hash": plan.identity_hash, "identity": plan.identity,
        "config": plan.cfg.to_dict(), "provenance": {**base_provenance(), **provenance},
        "image_bytes": plan.image_bytes,
    }  # fmt: skip


def run(config: RunConfig, *, backend=None) -> dict[str, Any]:
    """Run (or resume) one benchmark run; returns the summary dict (rank 0) or {} (other ranks)."""
    from coordbench.finalize import finalize, merge_shards

    wall0 = time.time()
    plan = plan_run(config)
    cfg = plan.cfg
    if backend is None:
        preflight_checkpoint(cfg)
    dist = detect_dist()
    shard = Shard(dist.rank, dist.world) if dist.enabled else cfg.shard
    if dist.enabled and cfg.shard.count > 1:
        raise ConfigError("--shard cannot be combined with torchrun/accelerate data parallel")
    run_dir = cfg.run_dir()
    mine = [s for s in plan.samples if s.index % shard.count == shard.index]
    work_dir = shard_dir(run_dir, shard) if shard.count > 1 else run_dir
    extra = {"world_size": dist.world, "rank": dist.rank, "shard": str(shard), "batch_size": cfg.batch_size,
             "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    with A.run_lock(work_dir):
        _prepare_dir(work_dir, plan, cfg.overwrite and not dist.enabled, extra)
        timing = generate_into(work_dir, plan, mine, dist, backend)
        _update_provenance(work_dir, {"generation": timing})
    if shard.count > 1:
        dist.barrier()
        if dist.rank != 0:
            return {}
        if not dist.enabled:
            log.warning(
                "shard %s done in %s; run `coordbench merge %s` when all shards finished",
                shard,
                work_dir,
                run_dir,
            )
            return {"shard": str(shard), "work_dir": str(work_dir)}
        merge_shards(run_dir, [shard_dir(run_dir, Shard(r, dist.world)) for r in range(dist.world)])
    return finalize(run_dir, cfg, wall_start=wall0)


def _update_provenance(work_dir: Path, update: dict[str, Any]) -> None:
    data = A.read_json(work_dir / A.RUN_JSON)
    prov = data.setdefault("provenance", {})
    gens = prov.setdefault("sessions", [])
    gens.append(update)
    A.write_json(work_dir / A.RUN_JSON, data)
