"""`coordbench merge`: shard dirs of one identity -> one run dir, checked for coverage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordbench.config.run import config_from_run_json
from coordbench.errors import ArtifactError
from coordbench.pipeline.finalize import finalize
from coordbench.rundir import files as A
from coordbench.rundir.guard import (
    check_replaceable,
    clear_run_dir,
    refuse_input_as_output,
    run_json_identity,
)
from coordbench.rundir.layout import RunDir
from coordbench.rundir.lock import run_lock
from coordbench.rundir.resume import identity_diff


def _shard_heads(shard_dirs: list[Path]) -> list[dict[str, Any]]:
    """The run.json of every shard; all must exist and share one identity."""
    heads = []
    for d in shard_dirs:
        if not (d / A.RUN_JSON).exists():
            raise ArtifactError(f"shard {d} has no {A.RUN_JSON} (not started?)")
        heads.append(A.read_json(d / A.RUN_JSON))
    hashes = {h["identity_hash"] for h in heads}
    if len(hashes) != 1:
        diff = identity_diff(
            heads[0]["identity"],
            next(h for h in heads if h["identity_hash"] != heads[0]["identity_hash"])["identity"],
        )
        raise ArtifactError(f"cannot merge runs with different identities: {'; '.join(diff[:6])}")
    return heads


def _check_coverage(recs: list[dict[str, Any]], expected: int) -> None:
    """Every sample index in 0..expected-1 exactly once across the shards' records."""
    seen: dict[int, str] = {}
    for r in recs:
        if r["index"] in seen:
            raise ArtifactError(f"sample {r['sample_id']} appears in more than one shard")
        seen[r["index"]] = r["sample_id"]
    missing = expected - len(seen)
    if missing:
        gaps = sorted(set(range(expected)) - set(seen))[:10]
        raise ArtifactError(
            f"{missing} of {expected} samples missing from the shards (indices {gaps}...)"
        )


def merge_shards(run_dir: Path, shard_dirs: list[Path]) -> dict[str, Any]:
    """Merge shard dirs of one identity into run_dir, checking coverage; returns run.json."""
    heads = _shard_heads(shard_dirs)
    expected = heads[0]["identity"]["dataset"]["num_samples"]
    recs, traces, counts = [], {}, []
    for d in shard_dirs:
        r, _ = A.read_jsonl(d / A.GT_VS_PRED, require=("sample_id", "index"))
        t, _ = A.read_jsonl(d / A.TRACE, require=("sample_id",))
        recs += r
        counts.append(len(r))
        for row in t:
            traces[row["sample_id"]] = row
    _check_coverage(recs, expected)
    recs.sort(key=lambda r: r["index"])
    out_traces = []
    for i, r in enumerate(recs):
        t = traces.get(r["sample_id"])
        if t is None:
            raise ArtifactError(f"sample {r['sample_id']} has no token trace in any shard")
        out_traces.append({**t, "line_idx": i})
    run_dir.mkdir(parents=True, exist_ok=True)
    A.write_jsonl(run_dir / A.TRACE, out_traces)
    A.write_jsonl(run_dir / A.GT_VS_PRED, recs)
    head = dict(heads[0])
    head["provenance"] = {
        **head.get("provenance", {}),
        "merged_from": [str(d) for d in shard_dirs],
        "merged_samples": counts,
        "shards": [h.get("provenance", {}) for h in heads],
    }
    A.write_json(run_dir / A.RUN_JSON, head)
    return head


def _check_destination(run_dir: Path, shard_dirs: list[Path], overwrite: bool) -> None:
    """The merged run goes into a new folder, a run dir of the same identity (a re-merge), or,
    with --overwrite, a run dir of another identity; never into a user's folder or a shard."""
    for d in shard_dirs:
        refuse_input_as_output(run_dir, [d])
    existing = run_json_identity(run_dir)
    check_replaceable(run_dir)
    if existing is None:
        return
    ours = _shard_heads(shard_dirs)[0].get("identity_hash")
    if existing == ours:
        return
    if not overwrite:
        raise ArtifactError(
            f"{run_dir} holds a finished run of another identity ({existing[:12]} vs the "
            f"shards' {str(ours)[:12]}); pass --overwrite to replace it, or another --out"
        )
    clear_run_dir(run_dir, keep=(RunDir(run_dir).shards_dir.name,))


def merge_and_score(
    dirs: list[Path], out: Path | None, overwrite: bool = False
) -> tuple[Path, dict]:
    if len(dirs) == 1 and RunDir(dirs[0]).shards_dir.is_dir():
        run_dir = out or dirs[0]
        shard_dirs = RunDir(dirs[0]).shard_dirs()
    else:
        shard_dirs = []
        for d in dirs:
            shard_dirs += RunDir(d).shard_dirs() if RunDir(d).shards_dir.is_dir() else [d]
        if out is None and len(dirs) == 1:
            raise ArtifactError(
                f"{dirs[0]} has no shards (no {RunDir(dirs[0]).shards_dir.name}/ folder): "
                "a run made without --shard needs no merge; to merge shard run dirs named one by "
                "one, pass them all with --out"
            )
        if out is None:
            raise ArtifactError("merging several run dirs needs --out")
        run_dir = out
    if not shard_dirs:
        raise ArtifactError(f"no shards found in {', '.join(map(str, dirs))}")
    _check_destination(run_dir, shard_dirs, overwrite)
    with run_lock(run_dir):
        merge_shards(run_dir, shard_dirs)
        cfg = config_from_run_json(A.read_json(run_dir / A.RUN_JSON), run_dir / A.RUN_JSON)
        summary = finalize(run_dir, cfg)
    return run_dir, summary


def shard_lines(head: dict[str, Any]) -> list[str]:
    """One line per merged shard: which shard, how many samples, from where."""
    prov = head.get("provenance") or {}
    dirs, counts = prov.get("merged_from") or [], prov.get("merged_samples") or []
    shards = prov.get("shards") or []
    out = []
    for i, d in enumerate(dirs):
        label = (shards[i] if i < len(shards) else {}).get("shard", "?")
        n = counts[i] if i < len(counts) else "?"
        out.append(f"shard {label}: {n} samples from {d}")
    return out
