"""`coordbench run`: plan, take the lock, generate (or resume), then finalize."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from coordbench.config.run import RunConfig, Shard
from coordbench.errors import ArtifactError, ConfigError, ResumeError
from coordbench.pipeline.dist import detect_dist, shard_dir
from coordbench.pipeline.finalize import finalize, scored_inputs
from coordbench.pipeline.generate import generate_into
from coordbench.pipeline.merge import merge_shards
from coordbench.pipeline.plan import Plan, plan_run, preflight_checkpoint
from coordbench.pipeline.provenance import base_provenance
from coordbench.rundir import files as A
from coordbench.rundir.guard import check_replaceable, clear_run_dir
from coordbench.rundir.layout import RunDir
from coordbench.rundir.lock import run_lock
from coordbench.rundir.resume import check_resume, remove_stale_temps
from coordbench.tasks import task_of

log = logging.getLogger("coordbench")


def _prepare_dir(work_dir: Path, plan: Plan, overwrite: bool, extra: dict[str, Any]) -> bool:
    if overwrite:
        clear_run_dir(work_dir)  # only a run dir (its own run.json) or an aborted start's leftovers
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


def finished_samples(run_dir: Path, identity_hash: str) -> int | None:
    """The sample count of a finished run of this identity (every derived file in place), else
    None. A re-run of a finished run changes nothing unless asked to re-score."""
    rd = RunDir(run_dir)
    try:
        head = A.read_json(rd.run_json)
        summary = A.read_json(rd.summary)
    except (ArtifactError, OSError):
        return None
    if not (isinstance(head, dict) and isinstance(summary, dict)):
        return None
    prov = head.get("provenance")
    if head.get("identity_hash") != identity_hash or not (prov or {}).get("finished_at"):
        return None
    if not all(p.is_file() for p in rd.derived_files(task_of(head.get("identity")).eval_files)):
        return None
    if prov.get("scored_inputs") != scored_inputs(run_dir):
        return None
    n = summary.get("total_emitted")
    return n if isinstance(n, int) else None


def _finished(run_dir: Path, identity_hash: str, launched: bool) -> bool:
    """Whether the run is finished; a single process checks again under the lock (a live writer
    is refused, a stale lock taken over), launcher ranks only read."""
    if finished_samples(run_dir, identity_hash) is None:
        return False
    if launched:
        return True
    with run_lock(run_dir):
        return finished_samples(run_dir, identity_hash) is not None


def run(config: RunConfig, *, backend=None, rescore: bool = False) -> dict[str, Any]:
    """Run (or resume) one benchmark run; returns the summary dict (rank 0) or {} (other ranks).

    A finished run of the same identity is left untouched ({"already_complete": N}) unless
    `rescore` is set; --overwrite always starts afresh."""
    wall0 = time.time()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    plan = plan_run(config)
    cfg = plan.cfg
    if backend is None:
        preflight_checkpoint(cfg)
    dist = detect_dist()
    if not (rescore or cfg.overwrite) and _finished(
        cfg.run_dir(), plan.identity_hash, dist.enabled
    ):
        if dist.rank != 0:
            return {}
        n = finished_samples(cfg.run_dir(), plan.identity_hash)
        return {"already_complete": n, "run_dir": str(cfg.run_dir())}
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
        "started_at": started_at,
    }
    check_replaceable(work_dir)  # a user's folder is never used (or cleared) as a run dir
    with run_lock(work_dir):
        _prepare_dir(work_dir, plan, cfg.overwrite and not dist.enabled, extra)
        slot = _open_session(work_dir, started_at)

        def record(timing: dict[str, Any]) -> None:
            _write_session(work_dir, slot, started_at, wall0, timing)

        record(generate_into(work_dir, plan, mine, dist, backend, on_batch=record))
    if shard.count > 1:
        dist.barrier()
        if dist.rank != 0:
            return {}
        if not dist.enabled:
            return {"shard": str(shard), "work_dir": str(work_dir)}
        merge_shards(run_dir, [shard_dir(run_dir, Shard(r, dist.world)) for r in range(dist.world)])
    return finalize(run_dir, cfg)


def _open_session(work_dir: Path, started_at: str) -> int:
    """Append this invocation's entry to run.json's `sessions`; returns its position."""
    data = A.read_json(work_dir / A.RUN_JSON)
    sessions = data.setdefault("provenance", {}).setdefault("sessions", [])
    sessions.append({"started_at": started_at, "generation": {"generated": 0}})
    A.write_json(work_dir / A.RUN_JSON, data)
    return len(sessions) - 1


def _write_session(
    work_dir: Path, slot: int, started_at: str, wall0: float, timing: dict[str, Any]
) -> None:
    """Rewrite this invocation's entry (start, end, samples generated, seconds) in run.json."""
    data = A.read_json(work_dir / A.RUN_JSON)
    data["provenance"]["sessions"][slot] = {
        "started_at": started_at,
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(time.time() - wall0, 3),
        "generation": dict(timing),
    }
    A.write_json(work_dir / A.RUN_JSON, data)
