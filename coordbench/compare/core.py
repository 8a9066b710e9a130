"""`compare_runs`: is B really better than A? Plain-data results the CLI formats
([ARCH-COMPARE], [UP-COMPARE]).

    from coordbench.compare.core import compare_runs
    res = compare_runs(["output/runs/a", "output/runs/b"], n_boot=1000, seed=0)
    res.delta("b", "mAP")
    # -> DeltaRow(metric='mAP', baseline=..., delta=..., ci_low=..., verdict=...)

Deltas are run minus baseline on the samples both runs share; 95 % CIs come from a paired
image-level bootstrap (same resampled images for both runs), and the verdict says whether
the CI excludes 0. Caveats (identity differences, partial runs, sample sets, identical
preset images) are collected before any number, so a formatter prints them first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coordbench.compare import caveats as C
from coordbench.compare.groups import (
    GroupDelta,
    GroupRow,
    SingleVsGroup,
    group_runs,
    single_vs_groups,
)
from coordbench.compare.load import RunData, load_run, unique_names
from coordbench.compare.metrics import MetricSpec, catalogue, metric_value, resolve_metric
from coordbench.compare.pairs import (
    ClassDelta,
    DeltaRow,
    ImageDelta,
    pair_deltas,
    per_class_deltas,
    per_image_deltas,
)
from coordbench.errors import ConfigError
from coordbench.rundir import layout as L
from coordbench.tasks import Task, task_of

__all__ = [
    "ClassDelta",
    "CompareResult",
    "DeltaRow",
    "GroupDelta",
    "GroupRow",
    "ImageDelta",
    "PairResult",
    "RunRow",
    "compare_runs",
]


@dataclass
class RunRow:
    """One run's own numbers (its full sample set), as in its summary.json."""

    name: str
    path: str
    identity_hash: str | None
    n_samples: int
    partial: str | None
    values: dict[str, float | None]


@dataclass
class PairResult:
    """One run against the baseline."""

    run: str
    baseline: str
    about: str  # what differs between the two identities
    n_baseline: int
    n_run: int
    n_shared: int
    deltas: list[DeltaRow] = field(default_factory=list)
    per_class_gains: list[ClassDelta] = field(default_factory=list)
    per_class_losses: list[ClassDelta] = field(default_factory=list)
    per_image_gains: list[ImageDelta] = field(default_factory=list)
    per_image_losses: list[ImageDelta] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CompareResult:
    runs: list[RunRow]
    baseline: str | None
    caveats: list[str]
    pairs: list[PairResult]
    groups: list[GroupRow]
    group_deltas: list[GroupDelta]
    metrics: list[str]
    n_boot: int
    seed: int
    top_k: int
    group_by: str
    single_vs_group: list[SingleVsGroup] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, **asdict(self)}

    def delta(self, run: str, metric: str) -> DeltaRow | None:
        """The delta row of `metric` for `run` against the baseline (None if not compared)."""
        for p in self.pairs:
            if p.run == run:
                return next((d for d in p.deltas if d.metric == metric), None)
        return None

    def value(self, run: str, metric: str) -> float | None:
        row = next((r for r in self.runs if r.name == run), None)
        return None if row is None else row.values.get(metric)


def _run_row(run: RunData, specs: Sequence[MetricSpec]) -> RunRow:
    values = {s.label: metric_value(s, run.metrics, run.parse_rates, run.provenance) for s in specs}
    return RunRow(
        run.name, str(run.path), run.identity_hash, len(run.samples), run.partial_reason, values
    )


def _names(run: RunData, want: Path) -> bool:
    if str(want) in (run.name, run.path.name):
        return True
    return want.exists() and want.resolve() in (
        run.path.resolve(),
        (run.path / L.SUMMARY).resolve(),
    )


def pick_baseline(runs: list[RunData], baseline: str | None) -> RunData | None:
    """The run named (dir name, display name or path) by --baseline, else the first complete one."""
    if baseline is None:
        return next((r for r in runs if r.summary is not None), None)
    for r in runs:
        if _names(r, Path(baseline)):
            if r.summary is None:
                raise ConfigError(
                    f"baseline {baseline} is partial ({r.partial_reason}); "
                    "pick another with --baseline"
                )
            return r
    raise ConfigError(
        f"--baseline {baseline!r} is none of the compared runs ({', '.join(r.name for r in runs)})"
    )


def _compare_pair(
    base: RunData,
    run: RunData,
    specs: Sequence[MetricSpec],
    ignore_axes: set[str],
    n_boot: int,
    seed: int,
    top_k: int,
    caveats: list[str],
) -> PairResult:
    shared = [k for k in base.samples if k in run.samples]
    about, id_caveats = C.identity_caveats(base, run, ignore_axes)
    pair = PairResult(run.name, base.name, about, len(base.samples), len(run.samples), len(shared))
    caveats += id_caveats
    for c in (
        C.sample_set_caveat(base, run, len(shared)),
        C.identical_images_caveat(base, run, shared),
        C.different_gt_caveat(base, run, shared),
        C.equal_weights_caveat(base, run),
    ):
        if c:
            caveats.append(c)
    same_sets = len(shared) == len(base.samples) == len(run.samples)
    pair.deltas, notes = pair_deltas(base, run, shared, specs, same_sets, n_boot, seed)
    pair.notes += notes
    if c := C.seed_only_caveat(base, run, [d.verdict for d in pair.deltas]):
        caveats.append(c)
    if shared:
        pair.per_class_gains, pair.per_class_losses = per_class_deltas(base, run, shared, top_k)
        pair.per_image_gains, pair.per_image_losses = per_image_deltas(base, run, shared, top_k)
    return pair


def compare_runs(
    paths: Sequence[str | Path],
    baseline: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    top_k: int = 10,
    group_by: str = "seed",
    metrics: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> CompareResult:
    """Compare run dirs against a baseline: per-run table, deltas with paired bootstrap CIs, groups.

    Args:
        paths: run dirs (or their summary.json); at least one.
        baseline: a run's name or path (default: the first complete run).
        group_by: identity key whose runs are otherwise identical and aggregate as mean ± std
            ("seed" for multi-seed runs, "dataset" for leave-one-group-out folds).
        metrics: catalogue labels to show (default: the catalogue of the runs' task).
        extra: further metrics (labels or raw keys) shown after those, e.g. a gate's.
    """
    if not paths:
        raise ConfigError("compare needs at least one run dir")
    if n_boot < 0:
        raise ConfigError(f"--n-boot must be >= 0, got {n_boot}")
    runs = [load_run(p) for p in paths]
    task = _one_task(runs)
    specs = _select(metrics, task, extra)
    unique_names(runs)
    caveats: list[str] = []
    for r in runs:
        caveats += [f"{r.name}: {n}" for n in r.notes]
        if c := C.partial_caveat(r):
            caveats.append(c)
    base = pick_baseline(runs, baseline)
    complete = [r for r in runs if r.summary is not None]
    caveats += C.same_run_caveats(runs)
    groups, group_deltas = group_runs(complete, group_by, base, specs)
    grouped = {m for g in groups for m in g.members}
    pairs = []
    for r in complete:
        if base is not None and r is not base:
            # Runs that are both in groups are compared by their group means:
            # the group axis is expected.
            ignore = {group_by} if base.name in grouped and r.name in grouped else set()
            pairs.append(_compare_pair(base, r, specs, ignore, n_boot, seed, top_k, caveats))
    if c := C.throughput_caveat(complete):
        caveats.append(c)
    if base is None:
        caveats.append("no complete run among the inputs: nothing to compare")
    return CompareResult(
        runs=[_run_row(r, specs) for r in runs],
        baseline=None if base is None else base.name,
        caveats=list(dict.fromkeys(caveats)),
        pairs=pairs,
        groups=groups,
        group_deltas=group_deltas,
        metrics=[s.label for s in specs],
        n_boot=n_boot,
        seed=seed,
        top_k=top_k,
        group_by=group_by,
        single_vs_group=single_vs_groups(complete, groups, specs),
    )


def _one_task(runs: list[RunData]) -> Task:
    """The task every run was made with: runs of different benchmarks have no common metric."""
    tasks = {}
    for r in runs:
        t = task_of(r.identity)
        tasks.setdefault(t.name, (t, r.name))
    if len(tasks) > 1:
        named = "; ".join(f"{name} ({run})" for name, (_, run) in tasks.items())
        raise ConfigError(f"cannot compare runs of different tasks: {named}")
    return next(iter(tasks.values()))[0]


def _select(
    metrics: Sequence[str] | None, task: Task, extra: Sequence[str] = ()
) -> list[MetricSpec]:
    known = catalogue(task)
    chosen = list(known) if metrics is None else []
    for m in [*(metrics or ()), *extra]:
        spec = resolve_metric(m)
        if spec is None:
            raise ConfigError(f"unknown metric {m!r}; known: {', '.join(s.label for s in known)}")
        if spec not in chosen:
            chosen.append(spec)
    return chosen
