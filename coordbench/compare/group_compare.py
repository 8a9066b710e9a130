"""Compare two benchmark-group dirs (ODinW-13): per-member deltas and the mean's delta.

Each member is paired image by image (its own data set); every bootstrap replicate resamples
the images within each member independently and averages the members' deltas, so the mean's CI
carries every member's sampling noise with each data set weighted once, as the mean is. The
point deltas are the members' own `odinw_*` metrics (at the protocol's maxDets); the
replicates re-accumulate COCO AP on the resampled images with the resampler's maxDets 100,
which equals them whenever no image has more than 100 boxes (`ci_basis` says so). [ARCH-GROUPS]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from coordbench.errors import ArtifactError
from coordbench.metrics.bootstrap import BootstrapData, resample_counts, resample_metrics
from coordbench.rundir import files as A
from coordbench.rundir import layout as L

GROUP_JSON = "group.json"
METRICS = (("mAP", "odinw_mAP", "bbox_AP"), ("AP50", "odinw_AP50", "bbox_AP50"))
CI_BASIS = "COCO AP re-accumulated at maxDets 100 on images resampled within each member"


def _group(path: Path) -> dict[str, Any]:
    try:
        head = A.read_json(path / GROUP_JSON)
    except (OSError, ArtifactError) as e:
        raise ArtifactError(f"{path}: not a group dir ({e})") from None
    if not isinstance(head, dict) or not isinstance(head.get("members"), list):
        raise ArtifactError(f"{path / GROUP_JSON}: no member list")
    return head


def _member(root: Path, name: str) -> tuple[dict[str, Any], BootstrapData] | None:
    ev = root / name / L.EVAL_DIR
    try:
        metrics = A.read_json(ev / L.METRICS)["metrics"]
        return metrics, BootstrapData.from_eval_dir(ev)
    except (OSError, ArtifactError, KeyError, TypeError):
        return None


def _paired(
    da: BootstrapData, db: BootstrapData, n: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    pos_a = {k: i for i, k in enumerate(da.image_keys)}
    pos_b = {k: i for i, k in enumerate(db.image_keys)}
    keys = [k for k in da.image_keys if k in pos_b]
    if not keys:
        raise ArtifactError("a member's two runs share no image: nothing to pair")
    wc = np.vstack([np.ones((1, len(keys)), np.int64), resample_counts(len(keys), n, rng)])
    wa = np.zeros((len(wc), len(da.image_keys)), np.int64)
    wb = np.zeros((len(wc), len(db.image_keys)), np.int64)
    wa[:, [pos_a[k] for k in keys]] = wc
    wb[:, [pos_b[k] for k in keys]] = wc
    stats = tuple(m[2] for m in METRICS)
    return resample_metrics(da, wa, stats), resample_metrics(db, wb, stats), len(keys)


def _ci(d: np.ndarray, ci: float) -> tuple[float | None, float | None, str]:
    d = d[np.isfinite(d)]
    if not len(d):
        return None, None, "undefined"
    lo, hi = (float(v) for v in np.percentile(d, [50 * (1 - ci), 50 * (1 + ci)]))
    return lo, hi, "better" if lo > 0 else "worse" if hi < 0 else "noise"


def compare_groups(
    a: str | Path, b: str | Path, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> dict[str, Any]:
    """B - A per member and for the unweighted mean, with percentile CIs."""
    ra, rb = Path(a), Path(b)
    ha, hb = _group(ra), _group(rb)
    names = [m["name"] for m in ha["members"] if m["name"] in {x["name"] for x in hb["members"]}]
    caveats = []
    if ha.get("task") != hb.get("task"):
        raise ArtifactError(f"{ra} is task {ha.get('task')!r}, {rb} is {hb.get('task')!r}")
    if ha.get("protocol") != hb.get("protocol"):
        caveats.append(f"protocols differ: {ha.get('protocol')} vs {hb.get('protocol')}")
    rng = np.random.default_rng(seed)
    rows, reps, missing = [], {k: [] for k, _, _ in METRICS}, []
    for name in names:
        ma, mb = _member(ra, name), _member(rb, name)
        if ma is None or mb is None:
            missing.append(name)
            continue
        va, vb, n_img = _paired(ma[1], mb[1], n_boot, rng)
        row: dict[str, Any] = {"member": name, "n_images": n_img}
        for label, key, stat in METRICS:
            pa, pb = float(ma[0][key]), float(mb[0][key])
            d = np.where((va[stat] == -1) | (vb[stat] == -1), np.nan, vb[stat] - va[stat])
            reps[label].append(d[1:])
            lo, hi, verdict = _ci(d[1:], ci)
            row[label] = {
                "a": pa,
                "b": pb,
                "delta": pb - pa,
                "ci_low": lo,
                "ci_high": hi,
                "verdict": verdict,
            }
        rows.append(row)
    if missing:
        caveats.append(f"members not finished in both groups: {', '.join(missing)} (no mean)")
    mean = None
    if rows and not missing:
        mean = {}
        for label, _, _ in METRICS:
            pa = float(np.mean([r[label]["a"] for r in rows]))
            pb = float(np.mean([r[label]["b"] for r in rows]))
            lo, hi, verdict = _ci(np.mean(np.vstack(reps[label]), axis=0), ci)
            mean[label] = {
                "a": pa,
                "b": pb,
                "delta": pb - pa,
                "ci_low": lo,
                "ci_high": hi,
                "verdict": verdict,
            }
    return {
        "a": str(ra),
        "b": str(rb),
        "task": ha.get("task"),
        "n_resamples": n_boot,
        "seed": seed,
        "ci": ci,
        "ci_basis": CI_BASIS,
        "members": rows,
        "mean": mean,
        "caveats": caveats,
    }


def _cell(d: dict[str, Any]) -> str:
    ci = (
        f" [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] {d['verdict']}"
        if d["ci_low"] is not None
        else ""
    )
    return f"{d['a']:.4f} -> {d['b']:.4f} ({d['delta']:+.4f}{ci})"


def to_markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# {res['task']}: {res['a']} -> {res['b']}",
        "",
        "| member | mAP | AP50 |",
        "|---|---|---|",
    ]
    for r in res["members"]:
        lines.append(f"| {r['member']} | {_cell(r['mAP'])} | {_cell(r['AP50'])} |")
    if res["mean"]:
        m = res["mean"]
        lines.append(f"| **mean (unweighted)** | {_cell(m['mAP'])} | {_cell(m['AP50'])} |")
    lines += [
        "",
        f"CIs: {res['ci']:.0%} percentile, {res['n_resamples']} resamples; {res['ci_basis']}.",
    ]
    lines += [f"- caveat: {c}" for c in res["caveats"]]
    return "\n".join(lines) + "\n"
