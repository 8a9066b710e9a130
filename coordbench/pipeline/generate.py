"""Generate every unfinished sample of a work dir, appending records and traces per batch.

The pipeline never imports torch itself; backends are created by name, lazily."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordbench.backends.registry import backend_class, cuda_available
from coordbench.config.prompts import build_messages
from coordbench.config.run import RunConfig
from coordbench.config.seeding import sample_seed
from coordbench.data.dataset import gt_objects, open_image
from coordbench.parse.answer import parse_for_preset
from coordbench.parse.output import ParsedOutput, upstream_modes
from coordbench.pipeline.dist import Dist
from coordbench.pipeline.plan import Plan
from coordbench.rundir import files as A
from coordbench.rundir.resume import consistent_prefix
from coordbench.types import Generation, GenerationRequest, Sample

log = logging.getLogger("coordbench")


def build_record(
    sample: Sample,
    gen: Generation,
    parsed: ParsedOutput,
    surface: str,
    task_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One gt_vs_pred.jsonl line: [UP-GT-VS-PRED] keys in order, the task's own fields (e.g.
    LVIS's federated lists; none for detection), then coordbench's own keys."""

    mode, pred_coord_mode = upstream_modes(surface)
    rec: dict[str, Any] = {
        "image": sample.image,
        "width": sample.width,
        "height": sample.height,
        "mode": mode,
        "coord_mode": "pixel",
        "gt": gt_objects(sample),
        **parsed.upstream_fields(),
    }
    if sample.image_id is not None:
        rec["image_id"] = sample.image_id
    if "metadata" in sample.extra:
        rec["metadata"] = sample.extra["metadata"]
    rec.update(task_fields or {})
    rec.update(
        pred_coord_mode=pred_coord_mode,
        sample_id=sample.sample_id,
        index=sample.index,
        raw_text=gen.text,
        **parsed.status_fields(),
        finish_reason=gen.finish_reason,
        n_new_tokens=gen.n_new_tokens,
        n_prompt_tokens=gen.n_prompt_tokens,
    )
    return rec


def build_trace(gen: Generation, line_idx: int) -> dict[str, Any]:
    """One pred_token_trace.jsonl line: [UP-TOKEN-TRACE] keys (processed logprobs) plus raw ones."""
    return {
        "line_idx": line_idx,
        "sample_id": gen.sample_id,
        "generated_token_text": gen.token_texts,
        "token_logprobs": gen.logprobs_processed,
        "token_logprobs_raw": gen.logprobs_raw,
        "token_ids": gen.token_ids,
        "finish_reason": gen.finish_reason,
        "text": gen.text,
        "n_prompt_tokens": gen.n_prompt_tokens,
    }


def make_backend(cfg: RunConfig, dist: Dist) -> Any:
    """The run's backend, from the registry; under data parallel each rank takes its own GPU."""
    cls = backend_class(cfg.backend)
    if cfg.backend == "hf":
        device = cfg.device
        if dist.enabled and device == "auto":
            device = f"cuda:{dist.local_rank}" if cuda_available() else "cpu"
        return cls(
            cfg.ckpt,
            device=device,
            dtype=cfg.dtype,
            adapter=cfg.adapter,
            trust_remote_code=cfg.trust_remote_code,
            allow_pickle=cfg.allow_pickle,
            threads=cfg.threads,
        )
    if cfg.backend == "vllm":
        return cls(cfg.ckpt, trust_remote_code=cfg.trust_remote_code)
    if cfg.backend.startswith("openai:"):
        url = cfg.backend.split(":", 1)[1]
        return cls(url, served_model=cfg.served_model, concurrency=cfg.concurrency)
    return cls(cfg.backend.split(":", 1)[1])


def generate_into(
    work_dir: Path,
    plan: Plan,
    samples: list[Sample],
    dist: Dist,
    backend=None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> dict:
    """Generate every sample not yet in work_dir, appending per batch; returns timing provenance.

    `on_batch(timing)` is called after every saved batch and once at the end, also when the
    run is interrupted, so an invocation's time and samples are never lost to a Ctrl-C."""

    cfg = plan.cfg
    done, _ = consistent_prefix(work_dir, cfg.batch_size, len(samples))
    done_ids = {r["sample_id"] for r in done}
    todo = [s for s in samples if s.sample_id not in done_ids]
    timing: dict[str, Any] = {"resumed_from": len(done), "generated": 0}
    if not todo:
        return timing
    if done and dist.rank == 0:
        log.warning("resuming at %d/%d (%s)", len(done), len(samples), work_dir)
    t0 = time.perf_counter()
    backend = backend or make_backend(cfg, dist)
    timing["load_seconds"] = round(time.perf_counter() - t0, 3)
    popts = cfg.parse_options(plan.prompt.field_order)
    recs_out, traces_out = A.Appender(work_dir / A.GT_VS_PRED), A.Appender(work_dir / A.TRACE)
    line_idx = len(done)
    bar = _progress(len(samples), len(done), cfg.progress and dist.rank == 0, work_dir)
    t1 = time.perf_counter()
    try:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            reqs = [
                GenerationRequest(
                    s.sample_id,
                    build_messages(
                        plan.prompt, open_image(s), plan.task.prompt_context(s, plan.vocabulary)
                    ),
                    None,
                    sample_seed(cfg.seed, s.sample_id),
                )
                for s in batch
            ]
            gens = backend.generate(reqs, plan.params)
            recs, traces = [], []
            for s, g in zip(batch, gens, strict=True):
                parsed = parse_for_preset(
                    g.text,
                    plan.prompt,
                    width=s.width,
                    height=s.height,
                    options=popts,
                    finished=g.finish_reason != "length",
                )
                traces.append(build_trace(g, line_idx))
                fields = plan.task.record_fields(s)
                recs.append(build_record(s, g, parsed, plan.prompt.surface, fields))
                line_idx += 1
            traces_out.append(traces)  # trace first: a record is complete only with its trace
            recs_out.append(recs)
            bar.update(len(batch))
            timing["generated"] += len(batch)
            timing["generate_seconds"] = round(time.perf_counter() - t1, 3)
            if on_batch is not None:
                on_batch(timing)
    finally:
        bar.close()
        recs_out.close()
        traces_out.close()
        stats = getattr(backend, "stats", None)
        if stats is not None:
            timing.update(_stats_dict(stats))
        timing["generate_seconds"] = round(time.perf_counter() - t1, 3)
        if hasattr(backend, "info"):
            timing["backend"] = {
                "name": backend.info.name,
                "device": backend.info.device,
                "dtype": backend.info.dtype,
                **backend.info.provenance,
            }
        backend.close()
        if on_batch is not None:
            on_batch(timing)
    return timing


def _stats_dict(stats: Any) -> dict[str, Any]:
    d = {
        k: getattr(stats, k)
        for k in (
            "prefill_tokens",
            "prefill_seconds",
            "decode_tokens",
            "decode_seconds",
            "oom_retries",
            "rescore_seconds",
        )
    }
    if stats.prefill_seconds:
        d["prefill_tokens_per_s"] = round(stats.prefill_tokens / stats.prefill_seconds, 1)
    if stats.decode_seconds:
        d["decode_tokens_per_s"] = round(stats.decode_tokens / stats.decode_seconds, 1)
    return d


def _progress(total: int, initial: int, enabled: bool, work_dir: Path):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        unit="img",
        dynamic_ncols=True,
        desc=f"generate {work_dir.name}",
        smoothing=0.1,
    )
