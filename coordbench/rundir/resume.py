"""Resume or refuse: identity check, stale temp files, and the consistent prefix of a killed run."""

from __future__ import annotations

import contextlib
from pathlib import Path

from coordbench.errors import ArtifactError, ResumeError
from coordbench.rundir.files import read_json, write_jsonl
from coordbench.rundir.jsonl import read_jsonl
from coordbench.rundir.layout import EVAL_DIR, GT_VS_PRED, RUN_JSON, TRACE
from coordbench.rundir.lock import pid_alive


def identity_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identity dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += identity_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def check_resume(run_dir: Path, identity: dict, identity_hash: str) -> bool:
    """True when run_dir holds a run with this identity (resume); refuse when it differs."""
    path = run_dir / RUN_JSON
    if not path.exists():
        return False
    try:
        old = read_json(path)
        if not isinstance(old, dict):
            raise ArtifactError(f"{path} is not a JSON object")
    except ArtifactError:
        if _has_records(run_dir):  # never discard generated records over a damaged run.json
            raise ResumeError(
                f"{path} is damaged but {run_dir} holds generated records; restore run.json, "
                "or pass --overwrite to discard them"
            ) from None
        return False  # a run.json torn before anything was generated: start afresh
    if old.get("identity_hash") == identity_hash:
        return True
    if not _has_records(run_dir) and not (run_dir / EVAL_DIR).exists():
        return False  # refused or stopped before generating anything: the corrected command starts
    old_identity = old.get("identity")
    diff = identity_diff(old_identity if isinstance(old_identity, dict) else {}, identity)
    raise ResumeError(
        f"{run_dir} holds a run with a different identity "
        f"({'; '.join(diff[:6]) or 'hash differs'}); "
        "pass --overwrite to replace it or --name to start a new run"
    )


def _has_records(run_dir: Path) -> bool:
    return any(
        (run_dir / n).is_file() and (run_dir / n).stat().st_size for n in (GT_VS_PRED, TRACE)
    )


def remove_stale_temps(run_dir: Path) -> None:
    """Delete the temp files of atomic writes (`.NAME.tmp.PID`) whose writer is dead."""
    for folder in (run_dir, run_dir / EVAL_DIR):
        for p in folder.glob(".*.tmp.*") if folder.is_dir() else ():
            pid = p.name.rsplit(".", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    p.unlink()


def consistent_prefix(
    run_dir: Path, batch_size: int = 1, total: int | None = None
) -> tuple[list[dict], list[dict]]:
    """Records and traces of samples complete in both files; rewrites both to that prefix.

    Unless all `total` samples are done, the prefix is cut back to a multiple of `batch_size`: a
    batch half-written by a killed run is regenerated whole, so every sample is decoded in the same
    batch as in an uninterrupted run (batched logprobs differ in the last bits across batch shapes).
    """
    recs, rec_len = read_jsonl(run_dir / GT_VS_PRED, require=("sample_id",))
    traces, tr_len = read_jsonl(run_dir / TRACE, require=("sample_id",))
    done = {t["sample_id"] for t in traces}
    keep = []
    for r in recs:
        if r["sample_id"] not in done:
            break
        keep.append(r)
    if len(keep) != total:
        keep = keep[: len(keep) - len(keep) % max(1, batch_size)]
    ids = {r["sample_id"] for r in keep}
    keep_traces = [t for t in traces if t["sample_id"] in ids]
    for name, rows, full, good in (
        (GT_VS_PRED, keep, recs, rec_len),
        (TRACE, keep_traces, traces, tr_len),
    ):
        path = run_dir / name
        if path.exists() and (len(rows) != len(full) or path.stat().st_size != good):
            write_jsonl(path, rows)
    return keep, keep_traces
