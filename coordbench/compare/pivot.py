"""A paper's tables from a set of runs: one table per level of a column axis (rows: e.g.
checkpoints; columns: the headline metrics, bs and pred_total), a delta table per row between
the levels of each other axis (paired bootstrap CI and verdict), seeds as mean ± std, caveats
naming the cells, provenance and takeaways stated only from what the CIs support.

`coordbench suite` builds the cells from its matrix; `coordbench compare --rows A --cols B`
builds them from the runs' identities. Pure: reads run dirs, no model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from coordbench.compare import caveats as C
from coordbench.compare.load import RunData
from coordbench.compare.metrics import MetricSpec, catalogue, metric_value, resolve_metric
from coordbench.compare.pairs import DeltaRow, pair_deltas
from coordbench.compare.stats import mean_std
from coordbench.errors import ConfigError
from coordbench.tasks import Task

SEED = "seed"
# a paper table's columns ([UP-COMPARE] reference note): those of the task's catalogue it has
PAPER_COLUMNS = ("mAP", "AP50", "AP75", "AR1", "F1@0.5", "F1@0.3", "pred_total")
MAX_TAKEAWAYS = 12


@dataclass
class PivotCell:
    """One run with its axis values (the row axis first); `run` is None for a missing cell."""

    name: str
    axes: dict[str, str]
    path: str
    identity_hash: str | None = None
    run: RunData | None = field(default=None, repr=False)
    state: str = "done"  # done | partial | missing

    @property
    def done(self) -> bool:
        return self.run is not None and self.run.summary is not None and not self.run.partial


@dataclass
class PivotRow:
    label: str
    members: list[str]
    batch_size: str
    mean: dict[str, float | None]
    std: dict[str, float | None]  # over seeds; None with one run


@dataclass
class LevelTable:
    axis: str | None
    level: str | None
    rows: list[PivotRow]


@dataclass
class DeltaTable:
    row: str  # the row axis value (e.g. the checkpoint)
    axis: str
    base_level: str
    level: str
    fixed: dict[str, str]  # the other axes' values held fixed
    base_cell: str
    cell: str
    n_shared: int
    deltas: list[DeltaRow]
    notes: list[str]


@dataclass
class PivotResult:
    rows_axis: str
    cols_axis: str | None
    other_axes: list[str]
    metrics: list[str]
    tables: list[LevelTable]
    deltas: list[DeltaTable]
    takeaways: list[str]
    caveats: list[str]
    cells: list[dict[str, Any]]  # provenance: name, axes, path, identity hash, state
    n_boot: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, **asdict(self)}


def pick_metrics(task: Task, wanted: Sequence[str] | None = None) -> list[MetricSpec]:
    """The report's columns: `wanted` labels, else the paper columns the task has, else its
    headline."""
    known = {s.label: s for s in catalogue(task)}
    if wanted:
        out = []
        for w in wanted:
            spec = resolve_metric(w)
            if spec is None:
                raise ConfigError(f"unknown report metric {w!r}; known: {', '.join(known)}")
            out.append(spec)
        return out
    paper = [known[m] for m in PAPER_COLUMNS if m in known]
    return paper or [known[m.label] for m in task.headline]


def _value(spec: MetricSpec, run: RunData) -> float | None:
    return metric_value(spec, run.metrics, run.parse_rates, run.provenance)


def _levels(cells: Sequence[PivotCell], axis: str) -> list[str]:
    return list(dict.fromkeys(c.axes[axis] for c in cells))


def _row_label(cell: PivotCell, rows_axis: str, extra: Sequence[str]) -> str:
    parts = [f"{a}={cell.axes[a]}" for a in extra]
    return cell.axes[rows_axis] + (f" ({', '.join(parts)})" if parts else "")


def _bs(runs: Sequence[RunData]) -> str:
    sizes = sorted({r.batch_size for r in runs if r.batch_size is not None})
    return "/".join(map(str, sizes)) or "-"


def level_tables(
    cells: Sequence[PivotCell],
    rows_axis: str,
    cols_axis: str | None,
    others: Sequence[str],
    specs: Sequence[MetricSpec],
) -> list[LevelTable]:
    """One table per level of `cols_axis`: a row per row-axis value (and per combination of the
    other non-seed axes), the seeds of a row aggregated as mean ± std."""
    extra = [a for a in others if a != SEED]
    out = []
    for level in _levels(cells, cols_axis) if cols_axis else [None]:
        here = [c for c in cells if cols_axis is None or c.axes[cols_axis] == level]
        rows: dict[str, list[PivotCell]] = {}
        for c in here:
            rows.setdefault(_row_label(c, rows_axis, extra), []).append(c)
        table = LevelTable(cols_axis, level, [])
        for label, members in rows.items():
            runs = [c.run for c in members if c.done and c.run is not None]
            mean, std = {}, {}
            for s in specs:
                m, sd, n = mean_std([_value(s, r) for r in runs])
                mean[s.label], std[s.label] = m, (sd if n > 1 else None)
            table.rows.append(PivotRow(label, [c.name for c in members], _bs(runs), mean, std))
        out.append(table)
    return out


def _index(cells: Sequence[PivotCell]) -> dict[tuple, PivotCell]:
    return {tuple(sorted(c.axes.items())): c for c in cells}


def delta_tables(
    cells: Sequence[PivotCell],
    rows_axis: str,
    axes: Sequence[str],
    specs: Sequence[MetricSpec],
    n_boot: int,
    seed: int,
) -> list[DeltaTable]:
    """Per row value, per axis (seeds excluded): each level against the axis's first level,
    the other axes held fixed, with the paired bootstrap over shared images."""
    index = _index(cells)
    out = []
    for axis in [a for a in axes if a != SEED]:
        levels = _levels(cells, axis)
        rest = [a for a in axes if a != axis]
        for row in _levels(cells, rows_axis):
            combos = itertools.product(*(_levels(cells, a) for a in rest))
            for combo in combos:
                fixed = dict(zip(rest, combo, strict=True))
                for level in levels[1:]:
                    base = index.get(_key(rows_axis, row, fixed, axis, levels[0]))
                    other = index.get(_key(rows_axis, row, fixed, axis, level))
                    if base is None or other is None or not (base.done and other.done):
                        continue
                    out.append(
                        _delta_table(row, axis, fixed, base, other, specs, n_boot, seed, levels[0])
                    )
    return out


def _key(rows_axis: str, row: str, fixed: dict[str, str], axis: str, level: str) -> tuple:
    return tuple(sorted({rows_axis: row, **fixed, axis: level}.items()))


def _delta_table(row, axis, fixed, base, other, specs, n_boot, seed, base_level) -> DeltaTable:
    a, b = base.run, other.run
    assert a is not None and b is not None
    shared = [k for k in a.samples if k in b.samples]
    same = len(shared) == len(a.samples) == len(b.samples)
    deltas, notes = pair_deltas(a, b, shared, specs, same, n_boot, seed)
    return DeltaTable(
        row, axis, base_level, other.axes[axis], fixed, base.name, other.name, len(shared),
        deltas, notes,
    )  # fmt: skip


def _sha(run: RunData | None) -> str | None:
    ck = (run.identity or {}).get("checkpoint") if run is not None else None
    if not isinstance(ck, dict) or not ck.get("sha256"):
        return None
    return f"{ck['sha256']}+{ck.get('adapter')}"


def equal_weight_rows(cells: Sequence[PivotCell], rows_axis: str) -> dict[str, list[str]]:
    """sha256 -> the row values (checkpoint names) whose runs have exactly those weights."""
    by_sha: dict[str, list[str]] = {}
    for c in cells:
        sha = _sha(c.run)
        if sha is not None and c.axes[rows_axis] not in by_sha.setdefault(sha, []):
            by_sha[sha].append(c.axes[rows_axis])
    return {k: v for k, v in by_sha.items() if len(v) > 1}


def pivot_caveats(
    cells: Sequence[PivotCell], rows_axis: str, deltas: Sequence[DeltaTable]
) -> list[str]:
    """What makes the tables misleading, each naming the cells."""
    out = []
    for sha, names in equal_weight_rows(cells, rows_axis).items():
        which = [c.name for c in cells if c.axes[rows_axis] in names and _sha(c.run) == sha]
        out.append(
            f"checkpoints {' and '.join(names)} have equal weights (sha256 {sha[:12]}…) under "
            f"different names: they are one model, and their differences measure nothing but "
            f"nondeterminism (cells {', '.join(which)})"
        )
    by_cell = {c.name: c for c in cells}
    same_images: dict[tuple[str, str], list[str]] = {}
    for d in deltas:
        a, b = by_cell[d.base_cell].run, by_cell[d.cell].run
        shared = [k for k in a.samples if k in b.samples] if a and b else []
        if a and b and C.identical_images_caveat(a, b, shared):
            pair = (C.preset_of(a) or "?", C.preset_of(b) or "?")
            same_images.setdefault(pair, []).extend([d.base_cell, d.cell])
    for (pa, pb), names in same_images.items():
        out.append(
            f"presets {pa} and {pb} produced identical images on this data (every shared sample "
            f"has the same size): a difference between them cannot come from the resolution "
            f"(cells {', '.join(dict.fromkeys(names))})"
        )
    done = [c for c in cells if c.done and c.run is not None]
    sizes: dict[int | None, list[str]] = {}
    for c in done:
        sizes.setdefault(c.run.batch_size, []).append(c.name)  # type: ignore[union-attr]
    if len(sizes) > 1:
        desc = "; ".join(f"{bs}: {', '.join(n)}" for bs, n in sizes.items())
        out.append(
            f"batch size differs between cells ({desc}): sampled outputs and batched numerics "
            "can depend on it"
        )
    out += _cell_caveats(cells)
    return out


def _cell_caveats(cells: Sequence[PivotCell]) -> list[str]:
    out = []
    missing = [c for c in cells if not c.done]
    if missing:
        out.append(
            f"{len(missing)} of {len(cells)} cells are not finished and left out of the tables: "
            + ", ".join(f"{c.name} ({c.state})" for c in missing)
        )
    for c in cells:
        parse = ((c.run.summary or {}).get("parse") or {}) if c.done and c.run else {}
        for key in ("dialect_check", "prompt_check"):
            check = parse.get(key)
            if isinstance(check, dict) and check.get("warning"):
                out.append(f"{c.name}: {check['warning']}")
    return out


def _verdict_of(dt: DeltaTable, metric: str) -> str | None:
    d = next((d for d in dt.deltas if d.metric == metric), None)
    return None if d is None else d.verdict


def takeaways(
    cells: Sequence[PivotCell],
    rows_axis: str,
    axes: Sequence[str],
    deltas: Sequence[DeltaTable],
    spec: MetricSpec,
    n_boot: int,
    seed: int,
) -> list[str]:
    """Sentences the CIs support: a row value against the first one on the primary metric in
    every fixed setting, and each axis's levels per row; nothing where no CI was computed."""
    out = []
    equal = {n for names in equal_weight_rows(cells, rows_axis).values() for n in names[1:]}
    tagged = [PivotCell(c.name, {"__none__": "all", **c.axes}, c.path, run=c.run) for c in cells]
    pairs = delta_tables(tagged, "__none__", [rows_axis, *axes], [spec], n_boot, seed)
    pairs = [p for p in pairs if p.axis == rows_axis]
    rows = _levels(cells, rows_axis)
    for row in rows[1:]:
        mine = [p for p in pairs if p.level == row]
        if row in equal:
            out.append(f"{row} has the same weights as another checkpoint: not a separate model")
        elif mine:
            out.append(_summarise(f"{row} vs {rows[0]}", mine, spec.label, axes, f"{row}", rows[0]))
    for axis in [a for a in axes if a != SEED]:
        per = [d for d in deltas if d.axis == axis]
        if per:
            out.append(_axis_line(axis, per, spec.label))
    return out[:MAX_TAKEAWAYS]


_SYMBOL = {"better": ">", "worse": "<"}


def _where(p: DeltaTable, axes: Sequence[str]) -> str:
    return ", ".join(f"{a} {p.fixed[a]}" for a in axes if a in p.fixed) or "the only setting"


def _summarise(
    what: str, pairs: list[DeltaTable], metric: str, axes: Sequence[str], row: str, base: str
) -> str:
    verdicts = [_verdict_of(p, metric) or "n/a" for p in pairs]
    where = " and ".join(_where(p, axes) for p in pairs)
    if len(set(verdicts)) == 1 and verdicts[0] in _SYMBOL:
        return f"{row} {_SYMBOL[verdicts[0]]} {base} on {metric} at {where} (CI excludes 0)"
    if all(v == "within noise" for v in verdicts):
        return f"{what}: {metric} within noise at {where} (CI includes 0)"
    parts = [f"{v} at {_where(p, axes)}" for p, v in zip(pairs, verdicts, strict=True)]
    return f"{what} on {metric}: " + "; ".join(parts)


def _axis_line(axis: str, per: list[DeltaTable], metric: str) -> str:
    lv = f"{axis} {per[0].level} vs {per[0].base_level}" if per else axis
    verdicts = {p.row: _verdict_of(p, metric) or "n/a" for p in per}
    kinds = set(verdicts.values())
    if kinds == {"within noise"}:
        return f"{lv}: {metric} within noise for every row ({', '.join(verdicts)})"
    return f"{lv} on {metric}: " + "; ".join(f"{v} for {r}" for r, v in verdicts.items())


def build_pivot(
    cells: Sequence[PivotCell],
    rows_axis: str,
    axes: Sequence[str],
    specs: Sequence[MetricSpec],
    n_boot: int = 1000,
    seed: int = 0,
    caveats: Sequence[str] = (),
) -> PivotResult:
    """The tables, deltas, caveats, takeaways and provenance of a set of cells. `axes` are the
    non-row axes in order; the first one is the tables' column axis."""
    cols = axes[0] if axes else None
    others = list(axes[1:])
    tables = level_tables(cells, rows_axis, cols, others, specs)
    deltas = delta_tables(cells, rows_axis, list(axes), specs, n_boot, seed)
    notes = [*caveats, *pivot_caveats(cells, rows_axis, deltas)]
    says = takeaways(cells, rows_axis, list(axes), deltas, specs[0], n_boot, seed) if specs else []
    prov = [
        {
            "name": c.name,
            "axes": c.axes,
            "run_dir": c.path,
            "identity_hash": c.identity_hash or (c.run.identity_hash if c.run else None),
            "state": c.state if not c.done else "done",
        }
        for c in cells
    ]
    return PivotResult(
        rows_axis, cols, others, [s.label for s in specs], tables, deltas, says,
        list(dict.fromkeys(notes)), prov, n_boot, seed,
    )  # fmt: skip


# axis names people type -> the identity key that holds the value
AXIS_KEYS = {
    "checkpoint": "checkpoint",
    "ckpt": "checkpoint",
    "preset": "preset",
    "prompt": "prompt",
    "seed": "seed",
    "task": "task",
    "data": "dataset",
    "dataset": "dataset",
    "backend": "backend",
    "temperature": "decode.temperature",
    "top_p": "decode.top_p",
    "top_k": "decode.top_k",
    "max_new_tokens": "decode.max_new_tokens",
    "repetition_penalty": "decode.repetition_penalty",
}


def _identity_key(axis: str) -> str:
    return AXIS_KEYS.get(axis, axis)


def axis_value(identity: dict[str, Any] | None, axis: str) -> str:
    """A run's value on an axis, read from its identity (a checkpoint by its folder name)."""
    node: Any = identity or {}
    key = _identity_key(axis)
    if key == "task" and "task" not in node:
        return "detection"
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return str(node.get("path_name") or node.get("name") or sorted(node.items()))
    return f"{node:g}" if isinstance(node, float) else str(node)


def _other_axes(runs: Sequence[RunData], fixed: set[str]) -> list[str]:
    """The identity keys (decode params one by one) in which the runs differ besides `fixed`."""
    keys: set[str] = set()
    base = runs[0].identity or {}
    for r in runs[1:]:
        diffs = C.flat_diff(base, r.identity or {})
        for axis in C.axes_of(diffs):
            if axis == "decode":
                keys |= {k for k, _, _ in diffs if k.startswith("decode.")}
            else:
                keys.add(axis)
    keys -= {_identity_key(a) for a in fixed} | {"package_version", "checkpoint.sha256"}
    return sorted(keys, key=lambda k: (k == SEED, k))


def pivot_runs(
    runs: Sequence[RunData],
    rows: str,
    cols: str,
    specs: Sequence[MetricSpec],
    n_boot: int = 1000,
    seed: int = 0,
) -> PivotResult:
    """`compare RUNS --rows A --cols B`: the suite's tables for any set of run dirs, the axes
    read from their identities; other differing keys become row labels (seeds: mean ± std)."""
    if rows == cols:
        raise ConfigError(f"--rows and --cols name the same axis ({rows})")
    others = _other_axes(runs, {rows, cols})
    cells = []
    for r in runs:
        axes = {rows: axis_value(r.identity, rows), cols: axis_value(r.identity, cols)}
        axes |= {a: axis_value(r.identity, a) for a in others}
        state = "done" if r.summary is not None and not r.partial else "partial"
        cells.append(PivotCell(r.name, axes, str(r.path), r.identity_hash, r, state))
    if len({tuple(sorted(c.axes.items())) for c in cells}) < len(cells):
        raise ConfigError(
            f"two runs have the same {rows} x {cols} values and no other difference (a re-run?); "
            "pass each once"
        )
    return build_pivot(cells, rows, [cols, *others], specs, n_boot=n_boot, seed=seed)
