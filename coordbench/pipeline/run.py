"""`coordbench run`: plan, take the lock, generate (or resume), then finalize."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from coordbench.config.run import RunConfig, Shard
from coordbench.errors import ConfigError, ResumeError
from coordbench.pipeline.dist import detect_dist, shard_dir
from coordbench.pipeline.finalize import finalize
from coordbench.pipeline.generate import generate_into
from coordbench.pipeline.merge import merge_shards
from coordbench.pipeline.plan import Plan, plan_run, preflight_checkpoint
from coordbench.pipeline.provenance import base_provenance
from coordbench.rundir import files as A
from coordbench.rundir.lock import run_lock
from coordbench.rundir.resume import check_resume, remove_stale_temps

log = logging.getLogger("coordbench")


def _prepare_dir(work_dir: Path, plan: Plan, overwrite: bool, extra: dict[str, Any]) -> bool:
    if overwrite and work_dir.exists():
        for p in work_dir.iterdir():
            if p.name != A.LOCK:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    remove_stale_temps(work_dir)
    resumed = check_resume(work_dir, plan.identity, plan.identity_hash)
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
                    f"image {by_id[sid].image_path} changed on disk "
                    f"({old[sid]} -> {plan.image_bytes.get(sid)} "
                    f"bytes) after sample {sid} was generated; restore it, "
                    "or pass --overwrite to start afresh"
                )
    if old != plan.image_bytes:
        data["image_bytes"] = plan.image_bytes
        A.write_json(work_dir / A.RUN_JSON, data)


def run_json(plan: Plan, provenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "identity_hash": plan.identity_hash,
        "identity": plan.identity,
        "config": plan.cfg.to_dict(),
        "provenance": {**base_provenance(), **provenance},
        "image_bytes": plan.image_bytes,
    }


def run(config: RunConfig, *, backend=None) -> dict[str, Any]:
    """Run (or resume) one benchmark run; returns the summary dict (rank 0) or {} (other ranks)."""
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
    extra = {
        "world_size": dist.world,
        "rank": dist.rank,
        "shard": str(shard),
        "batch_size": cfg.batch_size,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with run_lock(work_dir):
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
