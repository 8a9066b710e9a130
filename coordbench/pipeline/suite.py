"""`coordbench suite`: run a paper's matrix as one batch job, each checkpoint loaded once.

The cells (config/suite.py) are ordinary run dirs under the suite dir, run by `pipeline.run.run`
with a backend shared by a checkpoint's cells: a cell's `gt_vs_pred.jsonl` is the same bytes as
a stand-alone `coordbench run` with the same options (a sample's tokens depend only on its own
seed, never on what the backend generated before). A killed suite resumes cell by cell (a
finished cell is left as it is) and inside a cell batch by batch (the run's own resume).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench.backends.base import GenerationStats
from coordbench.compare.load import load_run
from coordbench.compare.pivot import PivotCell, PivotResult, build_pivot, pick_metrics
from coordbench.compare.suite_report import SUFFIX, render, to_markdown
from coordbench.config.run import RunConfig, Shard
from coordbench.config.suite import Cell, Suite, assign_cells, load_suite
from coordbench.errors import ConfigError, CoordbenchError
from coordbench.pipeline.dist import Dist, detect_dist
from coordbench.pipeline.generate import make_backend
from coordbench.pipeline.plan import plan_run, preflight_checkpoint
from coordbench.pipeline.run import finished_samples, run
from coordbench.rundir import files as A
from coordbench.tasks import get_task

log = logging.getLogger("coordbench")
SUITE_JSON = "suite.json"
# the options that decide which model object a cell needs; cells that agree share one
_LOAD_KEYS = (
    "backend",
    "ckpt",
    "adapter",
    "device",
    "dtype",
    "threads",
    "trust_remote_code",
    "allow_pickle",
)


class SharedBackend:
    """A backend loaded on first use and kept open across cells: `close()` (which every run
    calls when it ends) is a no-op; `release()` closes the real one when the suite is done
    with its checkpoint. Each cell starts with fresh generation stats, so a cell's token
    counts and tokens/s are its own."""

    def __init__(self, cfg: RunConfig, dist: Dist) -> None:
        self._cfg, self._dist = cfg, dist
        self._inner: Any = None
        self.load_seconds = 0.0

    def _backend(self) -> Any:
        if self._inner is None:
            t0 = time.perf_counter()
            preflight_checkpoint(self._cfg)
            self._inner = make_backend(self._cfg, self._dist)
            self.load_seconds = round(time.perf_counter() - t0, 3)
        return self._inner

    def __getattr__(self, name: str) -> Any:
        # `info` and `stats` are read after generating; before the load there are none
        if name in ("info", "stats") and self.__dict__.get("_inner") is None:
            raise AttributeError(name)
        return getattr(self._backend(), name)

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def begin_cell(self) -> None:
        if self._inner is not None and hasattr(self._inner, "stats"):
            self._inner.stats = GenerationStats()

    def generate(self, batch, params):  # noqa: ANN001 - the Backend protocol's signature
        return self._backend().generate(batch, params)

    def close(self) -> None:
        """Kept open: the next cell of this checkpoint reuses the loaded model."""

    def release(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None


@dataclass
class CellStatus:
    cell: Cell
    identity_hash: str | None
    state: str  # done | partial | missing | error
    detail: str = ""


def suite_dir(suite: Suite, out: str | None) -> Path:
    return Path(out) if out else Path("output/suites") / suite.name


def check_suite_dir(root: Path) -> None:
    """A suite dir is a new or empty folder or one holding a suite.json: never a user's folder."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root} is a file, not a suite dir")
    if root.is_dir() and any(root.iterdir()) and not (root / SUITE_JSON).is_file():
        raise ConfigError(
            f"--out {root} holds files but no {SUITE_JSON}: not a suite dir; pick another --out"
        )


def cell_status(cell: Cell) -> CellStatus:
    """Whether a cell is finished, partly generated or not started (no model is loaded)."""
    try:
        plan = plan_run(cell.config)
    except CoordbenchError as e:
        return CellStatus(cell, None, "error", str(e))
    rd = cell.config.run_dir()
    if finished_samples(rd, plan.identity_hash) is not None:
        return CellStatus(cell, plan.identity_hash, "done", f"{len(plan.samples)} samples")
    records = rd / A.GT_VS_PRED
    if records.is_file():
        done, _ = A.parse_jsonl_lenient(records.read_bytes())
        return CellStatus(
            cell, plan.identity_hash, "partial", f"{len(done)}/{len(plan.samples)} samples"
        )
    return CellStatus(cell, plan.identity_hash, "missing", f"0/{len(plan.samples)} samples")


def write_suite_json(suite: Suite, root: Path, statuses: list[CellStatus]) -> None:
    """The resolved matrix and each cell's identity: what the report and --plan read."""
    root.mkdir(parents=True, exist_ok=True)
    A.write_json(
        root / SUITE_JSON,
        {
            "schema_version": 1,
            "name": suite.name,
            "source": str(suite.source),
            "axes": ["checkpoint", *suite.axes],
            "checkpoints": [
                {"name": c.name, **{k: v for k, v in c.overrides.items()}}
                for c in suite.checkpoints
            ],
            "defaults": suite.defaults,
            "matrix": suite.matrix,
            "report": suite.report,
            "cells": [
                {
                    "name": s.cell.name,
                    "checkpoint": s.cell.checkpoint,
                    "axes": s.cell.axes,
                    "run_dir": s.cell.name,
                    "identity_hash": s.identity_hash,
                }
                for s in statuses
            ],
        },
    )


def plan_suite(path: str | Path, out: str | None) -> tuple[Suite, Path, list[Cell]]:
    suite = load_suite(path)
    root = suite_dir(suite, out)
    check_suite_dir(root)
    return suite, root, suite.cells(root)


def _groups(cells: list[Cell]) -> Iterator[list[Cell]]:
    """Consecutive cells of one checkpoint (cells come checkpoint by checkpoint)."""
    group: list[Cell] = []
    for c in cells:
        if group and group[0].checkpoint != c.checkpoint:
            yield group
            group = []
        group.append(c)
    if group:
        yield group


def _load_key(cfg: RunConfig) -> tuple:
    return tuple(getattr(cfg, k) for k in _LOAD_KEYS)


def run_cells(
    cells: list[Cell], on_cell: Callable[[Cell, dict[str, Any] | str], None] | None = None
) -> dict[str, dict[str, Any] | str]:
    """Run (or resume) cells checkpoint by checkpoint, each model loaded once and shared by the
    checkpoint's cells; a cell that fails is reported (its error text) and the others still
    run. Returns cell name -> the run's summary (or {"already_complete": N}) or an error."""
    dist = detect_dist()
    results: dict[str, dict[str, Any] | str] = {}
    for group in _groups(cells):
        shared: dict[tuple, SharedBackend] = {}
        try:
            for cell in group:
                cfg = cell.config.resolved()
                backend = shared.setdefault(_load_key(cfg), SharedBackend(cfg, dist))
                backend.begin_cell()
                try:
                    if cfg.backend in ("hf", "vllm"):
                        preflight_checkpoint(cfg)  # before the cell's dir is touched
                    res: dict[str, Any] | str = run(cell.config, backend=backend)
                except CoordbenchError as e:
                    res = str(e)
                results[cell.name] = res
                if on_cell is not None:
                    on_cell(cell, res)
        finally:
            for b in shared.values():
                b.release()
    return results


def my_cells(cells: list[Cell], shard: Shard) -> list[Cell]:
    """This job's cells: all of them, or one SLURM array task's share (each cell whole)."""
    if shard.count <= 1:
        return cells
    if detect_dist().enabled:
        raise ConfigError("--shard cannot be combined with torchrun/accelerate data parallel")
    return assign_cells(cells, shard)


def _axis_text(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def report_cells(statuses: list[CellStatus]) -> list[PivotCell]:
    """The cells as the report sees them: finished runs loaded, the rest named with their state."""
    out = []
    for s in statuses:
        rd = s.cell.config.run_dir()
        run = load_run(rd) if s.state == "done" else None
        axes = {
            "checkpoint": s.cell.checkpoint,
            **{k: _axis_text(v) for k, v in s.cell.axes.items()},
        }
        out.append(PivotCell(s.cell.name, axes, s.cell.name, s.identity_hash, run, s.state))
    return out


def build_report(
    suite: Suite, statuses: list[CellStatus], n_boot: int = 1000, seed: int = 0
) -> PivotResult:
    """The suite's PivotResult from what is finished (missing cells are named in the caveats)."""
    cells = report_cells(statuses)
    task = get_task(suite.defaults.get("task", "detection"))
    specs = pick_metrics(task, suite.report.get("metrics"))
    return build_pivot(cells, "checkpoint", suite.axes, specs, n_boot=n_boot, seed=seed)


def write_report(
    root: Path, res: PivotResult, title: str, formats: tuple[str, ...] = ()
) -> list[Path]:
    """report.md, plus report.csv / .tex / .json for the asked formats (atomic writes)."""
    paths = [root / "report.md"]
    A.write_bytes_atomic(paths[0], A.utf8(to_markdown(res, title)))
    for fmt in formats:
        if fmt != "md":
            p = root / f"report.{SUFFIX[fmt]}"
            A.write_bytes_atomic(p, A.utf8(render(res, fmt)))
            paths.append(p)
    return paths
