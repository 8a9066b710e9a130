"""Runs that differ only in one identity key (seed, or dataset for leave-one-group-out folds),
aggregated as mean ± std, and group-vs-baseline-group tests."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from coordbench.compare.load import RunData
from coordbench.compare.metrics import MetricSpec, metric_value
from coordbench.compare.stats import mean_std, paired_t_p, welch_p
from coordbench.config.run import identity_hash
from coordbench.errors import ConfigError

ALPHA = 0.05  # two-sided test level for the group verdict


@dataclass
class GroupRow:
    """Mean ± std (ddof 1) over the runs of one group; `n` runs, `axis_values` in member order."""

    label: str
    axis: str
    members: list[str]
    axis_values: list[str]
    n: int
    mean: dict[str, float | None] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)


@dataclass
class GroupDelta:
    """Group mean minus baseline-group mean; p from a paired t-test over matching axis values
    (same seeds / same folds in both groups), else Welch's t-test."""

    group: str
    baseline_group: str
    test: str  # "paired t" | "Welch t" | "n/a"
    metric: str
    mean_baseline: float | None
    mean_run: float | None
    delta: float | None
    p_value: float | None
    verdict: str


NOISE_Z = 2.0  # |run - group mean| within 2 group std is read as seed noise (about 95 %)


@dataclass
class SingleVsGroup:
    """A run outside every group (e.g. greedy) against one group's mean, with the group's std
    over its axis as the noise scale: z = (value - mean) / std."""

    run: str
    group: str
    metric: str
    value: float | None
    group_mean: float | None
    group_std: float | None
    delta: float | None
    z: float | None
    verdict: str


def single_vs_groups(
    runs: Sequence[RunData], groups: Sequence[GroupRow], specs: Sequence[MetricSpec]
) -> list[SingleVsGroup]:
    """Every run that belongs to no group against every group's mean."""
    grouped = {m for g in groups for m in g.members}
    out = []
    for r in runs:
        if r.name in grouped:
            continue
        for g in groups:
            for s in specs:
                v, mean, std = _value(s, r), g.mean.get(s.label), g.std.get(s.label)
                delta = None if v is None or mean is None else v - mean
                z = None if delta is None or not std else delta / std
                verdict = _noise_verdict(delta, z, s)
                out.append(SingleVsGroup(r.name, g.label, s.label, v, mean, std, delta, z, verdict))
    return out


def _noise_verdict(delta: float | None, z: float | None, spec: MetricSpec) -> str:
    if delta is None:
        return "n/a"
    if z is None:  # a group with zero spread: no noise scale to judge by
        return "n/a (group std 0)" if delta else "same"
    if abs(z) <= NOISE_Z:
        return "within noise"
    if spec.direction == 0:
        return "higher" if delta > 0 else "lower"
    return "better" if (delta > 0) == (spec.direction > 0) else "worse"


def _has(identity: dict, dotted: str) -> bool:
    node: Any = identity
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
    return True


def _keys(identity: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in identity.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _keys(v, f"{prefix}{k}.")
    return out


def check_axis(runs: Sequence[RunData], axis: str) -> None:
    idents = [r.identity for r in runs if isinstance(r.identity, dict)]
    if idents and not any(_has(i, axis) for i in idents):
        known = sorted({k for i in idents for k in _keys(i)}, key=lambda k: (k.count("."), k))
        raise ConfigError(
            f"--group-by {axis!r} is not an identity key of these runs; known keys: "
            + ", ".join(known[:40])
        )


def _without(identity: dict, dotted: str) -> dict:
    out = copy.deepcopy(identity)
    node = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.get(p)
        if not isinstance(node, dict):
            return out
    node.pop(parts[-1], None)
    return out


def _axis_value(identity: dict, dotted: str) -> str:
    node = identity
    for p in dotted.split("."):
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return str(node.get("path_name") or node.get("name") or sorted(node.items()))
    return str(node)


def _label(members: list[RunData], axis: str, i: int) -> str:
    prefix = os.path.commonprefix([m.name for m in members]).rstrip("_-. ")
    if prefix.endswith(("_s", "-s", "_seed", "-seed")) and axis == "seed":
        prefix = prefix.rsplit("_", 1)[0].rsplit("-", 1)[0]
    return f"{prefix if len(prefix) >= 3 else f'group {i}'} [{axis} ×{len(members)}]"


def _verdict(delta: float | None, p: float | None, direction: int) -> str:
    if delta is None or p is None or math.isnan(p):
        return "n/a"
    if p >= ALPHA or delta == 0:
        return "within noise"
    if direction == 0:
        return "higher" if delta > 0 else "lower"
    return "better" if (delta > 0) == (direction > 0) else "worse"


def group_runs(
    runs: Sequence[RunData], axis: str, base: RunData | None, specs: Sequence[MetricSpec]
) -> tuple[list[GroupRow], list[GroupDelta]]:
    """Groups of >= 2 runs equal in identity except `axis`, and each group against
    the baseline's group. An axis that no run's identity has is refused, with the keys there
    are (a typo would otherwise silently compare nothing)."""
    check_axis(runs, axis)
    buckets: dict[str, dict[str, RunData]] = {}
    for r in runs:  # one run per axis value: a re-run of the same identity is not another seed
        if r.identity is not None:
            bucket = buckets.setdefault(identity_hash(_without(r.identity, axis)), {})
            bucket.setdefault(_axis_value(r.identity, axis), r)
    rows: list[GroupRow] = []
    members_of: dict[str, list[RunData]] = {}
    for i, members in enumerate(list(b.values()) for b in buckets.values() if len(b) > 1):
        row = GroupRow(
            _label(members, axis, i + 1),
            axis,
            [m.name for m in members],
            [_axis_value(m.identity or {}, axis) for m in members],
            len(members),
        )
        for s in specs:
            row.mean[s.label], row.std[s.label], _ = mean_std([_value(s, m) for m in members])
        rows.append(row)
        members_of[row.label] = members
    base_row = next((g for g in rows if base is not None and base.name in g.members), None)
    deltas: list[GroupDelta] = []
    if base_row is not None:
        for g in rows:
            if g is not base_row:
                deltas += _group_deltas(
                    base_row, g, members_of[base_row.label], members_of[g.label], axis, specs
                )
    return rows, deltas


def _value(spec: MetricSpec, run: RunData) -> float | None:
    return metric_value(spec, run.metrics, run.parse_rates, run.provenance)


def _group_deltas(
    ga: GroupRow,
    gb: GroupRow,
    ma: list[RunData],
    mb: list[RunData],
    axis: str,
    specs: Sequence[MetricSpec],
) -> list[GroupDelta]:
    va = {_axis_value(m.identity or {}, axis): m for m in ma}
    vb = {_axis_value(m.identity or {}, axis): m for m in mb}
    paired = set(va) == set(vb)
    out = []
    for s in specs:
        if paired:
            keys = sorted(va)
            xa, xb = [_value(s, va[k]) for k in keys], [_value(s, vb[k]) for k in keys]
            ok = [(a, b) for a, b in zip(xa, xb, strict=True) if a is not None and b is not None]
            p = paired_t_p([a for a, _ in ok], [b for _, b in ok])
            test = "paired t"
        else:
            xa = [v for v in (_value(s, m) for m in ma) if v is not None]
            xb = [v for v in (_value(s, m) for m in mb) if v is not None]
            p, test = welch_p(xa, xb), "Welch t"
        a, b = ga.mean.get(s.label), gb.mean.get(s.label)
        delta = None if a is None or b is None else b - a
        out.append(
            GroupDelta(
                gb.label,
                ga.label,
                test if p is not None else "n/a",
                s.label,
                a,
                b,
                delta,
                p,
                _verdict(delta, p, s.direction),
            )
        )
    return out
