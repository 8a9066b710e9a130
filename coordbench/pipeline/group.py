"""A benchmark group (ODinW-13): one group dir holding one ordinary run dir per member.

`group.json` records the task, the protocol and the members (each member's identity hash once
planned); each member is a `coordbench run` of the member task on that member's data, so it
resumes as any run (a finished member is left as it is, a partial one resumes batch by batch)
and a SLURM array shards the group by member (`--shard auto`: member k goes to task k % N).
The group summary (`group_summary.json`) holds per-member mAP / AP50 and their unweighted mean,
once every member is finished. [ARCH-GROUPS]
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordbench.config.run import RunConfig, Shard, user_data_root
from coordbench.errors import ConfigError, CoordbenchError, DataError
from coordbench.pipeline.dist import detect_dist
from coordbench.pipeline.plan import plan_run, preflight_checkpoint
from coordbench.pipeline.run import finished_samples, run
from coordbench.pipeline.suite import SharedBackend
from coordbench.rundir import files as A
from coordbench.rundir import layout as L
from coordbench.tasks import get_task

log = logging.getLogger("coordbench")
GROUP_JSON = "group.json"
GROUP_SUMMARY = "group_summary.json"
SCHEMA_VERSION = 1
MEAN_KEYS = (("mAP", "odinw_mAP"), ("AP50", "odinw_AP50"))


def is_group_dir(path: str | Path) -> bool:
    return (Path(path) / GROUP_JSON).is_file()


def group_members(cfg: RunConfig) -> list[str]:
    members = cfg.task_preset().members
    if not members:
        raise ConfigError(f"task {cfg.task!r} is not a benchmark group (its preset has no members)")
    return list(members)


def member_data(cfg: RunConfig, member: str, odinw_root: str | Path | None) -> str:
    """`ROOT/<member>/test.jsonl` (what `coordbench data odinw` writes), or the preset's default."""
    if odinw_root is not None:
        return str(Path(odinw_root) / member / "test.jsonl")
    tp = cfg.task_preset()
    preset = cfg.preset or tp.default_preset or "768"
    if tp.data is None:
        raise ConfigError(f"task {cfg.task!r} names no member data: pass --odinw-root")
    return str(user_data_root() / tp.data.format(preset=preset, member=member))


def _member_backend(cfg: RunConfig, member: str) -> str:
    """`replay:DIR` replays DIR/<member> when it exists (one recorded run per member)."""
    if cfg.backend.startswith("replay:"):
        src = Path(cfg.backend.removeprefix("replay:"))
        if (src / member).is_dir():
            return f"replay:{src / member}"
    return cfg.backend


def member_config(
    cfg: RunConfig, member: str, group_dir: Path, odinw_root: str | Path | None
) -> RunConfig:
    return replace(
        cfg,
        data=member_data(cfg, member, odinw_root),
        out=str(group_dir),
        name=member,
        shard=Shard(),
        backend=_member_backend(cfg, member),
    )


def group_dir(cfg: RunConfig, odinw_root: str | Path | None) -> Path:
    if cfg.name:
        return replace(cfg, data="-").run_dir()
    first = group_members(cfg)[0]
    base = replace(cfg, data=member_data(cfg, first, odinw_root)).resolved().default_name()
    return Path(cfg.out) / f"{base}_{cfg.task}"


def _protocol(cfg: RunConfig) -> dict[str, Any] | None:
    task = get_task(cfg.task)
    return task.resolve_protocol(cfg, task.options) if task.resolve_protocol else None


def check_group_dir(root: Path, task: str, protocol: dict[str, Any] | None) -> None:
    """New, empty, or a group dir of this task and protocol: never a user's folder, never a
    group made under another protocol (its members would mix)."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a group dir")
    if not (root.is_dir() and any(root.iterdir())):
        return
    if not is_group_dir(root):
        raise ConfigError(
            f"{root} holds files but no {GROUP_JSON}: not a group dir; pick another --name/--out"
        )
    head = A.read_json(root / GROUP_JSON)
    if not isinstance(head, dict) or head.get("task") != task or head.get("protocol") != protocol:
        raise ConfigError(
            f"{root} is a group of task {head.get('task')!r} with protocol "
            f"{head.get('protocol')!r}, "
            f"not {task!r} with {protocol!r}; pick another --name"
        )


def write_group_json(root: Path, cfg: RunConfig, protocol: Any, members: list[dict]) -> None:
    old = A.read_json(root / GROUP_JSON) if is_group_dir(root) else {}
    known = {m["name"]: m for m in (old.get("members") or []) if isinstance(m, dict)}
    for m in members:  # a shard knows its own members' hashes; keep the others' from before
        if m.get("identity_hash") or m["name"] not in known:
            known[m["name"]] = m
    A.write_json(
        root / GROUP_JSON,
        {
            "schema_version": SCHEMA_VERSION,
            "task": cfg.task,
            "protocol": protocol,
            "members": [known[n] for n in group_members(cfg) if n in known],
        },
    )


def _member_metrics(run_dir: Path) -> dict[str, Any] | None:
    try:
        doc = A.read_json(run_dir / L.EVAL_DIR / L.METRICS)
        head = A.read_json(run_dir / A.RUN_JSON)
    except (CoordbenchError, OSError):
        return None
    if not isinstance(doc, dict) or not isinstance(head, dict):
        return None
    if finished_samples(run_dir, head.get("identity_hash", "")) is None:
        return None
    return doc.get("metrics")


def group_summary(root: Path) -> dict[str, Any]:
    """Per-member mAP/AP50 of the finished members and, when all are finished, their
    unweighted mean (each data set counts once, whatever its size)."""
    head = A.read_json(root / GROUP_JSON)
    rows, missing = [], []
    for m in head.get("members") or []:
        metrics = _member_metrics(root / m["name"])
        if metrics is None:
            missing.append(m["name"])
            continue
        rows.append({"member": m["name"], **{k: metrics.get(key) for k, key in MEAN_KEYS}})
    mean = None
    if rows and not missing:
        mean = {k: sum(float(r[k]) for r in rows) / len(rows) for k, _ in MEAN_KEYS}
    return {
        "schema_version": SCHEMA_VERSION,
        "task": head.get("task"),
        "protocol": head.get("protocol"),
        "members": rows,
        "missing": missing,
        "mean": mean,
        "mean_weighting": "unweighted mean over members",
    }


def format_group_summary(summary: dict[str, Any], root: Path) -> str:
    lines = [f"{root}  ({summary['task']}, protocol {summary['protocol']})", ""]
    lines.append(f"{'member':<28}{'mAP':>9}{'AP50':>9}")
    for r in summary["members"]:
        lines.append(f"{r['member']:<28}{r['mAP']:>9.4f}{r['AP50']:>9.4f}")
    if summary["mean"] is not None:
        mean = summary["mean"]
        lines.append(f"{'mean (unweighted)':<28}{mean['mAP']:>9.4f}{mean['AP50']:>9.4f}")
    if summary["missing"]:
        lines.append(f"not finished: {', '.join(summary['missing'])} (no mean until all are)")
    return "\n".join(lines)


def my_members(members: list[str], shard: Shard) -> list[str]:
    """This job's members: all, or one SLURM array task's share (member k -> task k % N)."""
    if shard.count <= 1:
        return members
    if detect_dist().enabled:
        raise ConfigError("--shard cannot be combined with torchrun/accelerate data parallel")
    return [m for k, m in enumerate(members) if k % shard.count == shard.index]


def _plan_members(
    cfg: RunConfig, root: Path, members: list[str], odinw_root: str | Path | None
) -> list[tuple[str, RunConfig, str]]:
    """(member, config, identity hash) for each member, every missing data set named at once."""
    out, problems = [], []
    for m in members:
        mc = member_config(cfg, m, root, odinw_root)
        try:
            out.append((m, mc, plan_run(mc).identity_hash))
        except DataError as e:
            problems.append(f"{m}: {e}")
    if problems:
        raise DataError(
            f"{len(problems)} member(s) cannot run: "
            + "; ".join(problems)
            + " (build them with `coordbench data odinw`)"
        )
    return out


def run_group(
    cfg: RunConfig, odinw_root: str | Path | None = None, *, rescore: bool = False
) -> dict[str, Any]:
    """Run (or resume) this job's members; returns {"group_dir", "results", "summary"}.

    A member that fails is reported and the others still run; the caller exits non-zero."""
    members = group_members(cfg)
    protocol = _protocol(cfg)
    root = group_dir(cfg, odinw_root)
    check_group_dir(root, cfg.task, protocol)
    mine = my_members(members, cfg.shard)
    planned = _plan_members(cfg, root, mine, odinw_root)
    root.mkdir(parents=True, exist_ok=True)
    hashes = {m: h for m, _, h in planned}  # other shards' members are listed, unplanned here
    entries = [{"name": m, "run_dir": m, "identity_hash": hashes.get(m)} for m in members]
    write_group_json(root, cfg, protocol, entries)
    results: dict[str, Any] = {}
    shared: SharedBackend | None = None
    try:
        for m, mc, _ in planned:
            backend = None
            if mc.backend in ("hf", "vllm"):
                preflight_checkpoint(mc.resolved())
                shared = shared or SharedBackend(mc.resolved(), detect_dist())
                shared.begin_cell()
                backend = shared
            try:
                results[m] = run(mc, backend=backend, rescore=rescore)
            except CoordbenchError as e:
                log.error("member %s failed: %s", m, e)
                results[m] = str(e)
    finally:
        if shared is not None:
            shared.release()
    summary = group_summary(root)
    A.write_json(root / GROUP_SUMMARY, summary)
    return {"group_dir": str(root), "results": results, "summary": summary}
