"""A suite file: a paper's matrix (checkpoints x presets x seeds x ...) as one TOML document.

    name = "paper"
    [defaults]            # any `run` option: data, limit, temperature, top_p, seed, prompt, ...
    [[checkpoints]]       # name, ckpt, optional overrides (prompt, adapter, backend, ...)
    [matrix]              # axes as lists: preset = ["768", "1024"], seed = [0, 1, 2]

Pure: reading the file gives the cells, each an ordinary RunConfig under the suite dir, named
from its axis values. Paths in the file are relative to the file's folder; `ckpt = "embedded"`
and `data = "embedded"` name the shipped model and data, as `coordbench run` with neither.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from coordbench.config.run import EMBEDDED_DATA, RunConfig, Shard, check_run_name
from coordbench.errors import ConfigError

# run options a suite decides itself: where the cells go and what they are called
_NOT_OPTIONS = {"out", "name", "shard", "overwrite", "progress"}
OPTIONS = {f.name: f for f in fields(RunConfig) if f.name not in _NOT_OPTIONS}
PATH_OPTIONS = ("ckpt", "adapter", "data", "image_root")
EMBEDDED = "embedded"
CHECKPOINT_AXIS = "checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    name: str
    overrides: dict[str, Any]  # ckpt and the checkpoint's own options


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: its axis values (checkpoint first) and its RunConfig."""

    name: str
    checkpoint: str
    axes: dict[str, Any]  # matrix axis -> value (without the checkpoint)
    config: RunConfig


@dataclass(frozen=True)
class Suite:
    name: str
    source: Path
    defaults: dict[str, Any]
    checkpoints: tuple[Checkpoint, ...]
    matrix: dict[str, list[Any]]
    report: dict[str, Any]

    @property
    def axes(self) -> list[str]:
        """The matrix axes in file order (the checkpoint axis is always first, implicitly)."""
        return list(self.matrix)

    def cells(self, out: Path) -> list[Cell]:
        """Every cell, checkpoint by checkpoint, then the axes in file order."""
        cells: list[Cell] = []
        names: dict[str, str] = {}
        for ck in self.checkpoints:
            for values in itertools.product(*self.matrix.values()):
                axes = dict(zip(self.matrix, values, strict=True))
                name = cell_name(ck.name, axes)
                label = f"{ck.name} {axes}"
                if name in names:
                    raise ConfigError(
                        f"{self.source}: cells {names[name]} and {label} get the same run "
                        f"name {name!r}; make the checkpoint names or axis values distinct"
                    )
                names[name] = label
                kw = {**self.defaults, **ck.overrides, **axes}
                cfg = RunConfig(**kw, out=str(out), name=name, progress=False)
                cells.append(Cell(name, ck.name, axes, cfg))
        return cells


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_part(value: Any) -> str:
    """A value as a piece of a folder name: anything but letters, digits and `._+-` becomes `-`."""
    text = value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else value
    return _UNSAFE.sub("-", str(text)).strip("-.") or "x"


def cell_name(checkpoint: str, axes: dict[str, Any]) -> str:
    """`CKPT__axis-value__axis-value`: one safe path component (config/run.py check_run_name)."""
    name = "__".join([safe_part(checkpoint), *(f"{a}-{safe_part(v)}" for a, v in axes.items())])
    check_run_name(name, "the suite cell name")
    return name


def _check_value(where: str, key: str, value: Any) -> Any:
    """A value a RunConfig field of this name accepts (TOML gives ints for floats)."""
    if key not in OPTIONS:
        raise ConfigError(
            f"{where}: unknown run option {key!r}; known: {', '.join(sorted(OPTIONS))}"
        )
    default = OPTIONS[key].default
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif key in ("limit", "threads"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:  # str options and the optional ones (ckpt, data, preset ...)
        ok = isinstance(value, str | int) and not isinstance(value, bool)
        if ok and key == "preset":
            value = str(value)
    if not ok:
        raise ConfigError(f"{where}: {key} = {value!r} has the wrong type")
    return value


def _path(base: Path, key: str, value: Any) -> Any:
    if key not in PATH_OPTIONS or not isinstance(value, str):
        return value
    if value == EMBEDDED and key in ("ckpt", "data"):
        return None if key == "ckpt" else str(EMBEDDED_DATA)
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def _options(where: str, table: Any, base: Path) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of run options")
    return {k: _path(base, k, _check_value(where, k, v)) for k, v in table.items()}


def _checkpoints(src: Path, raw: Any, base: Path) -> tuple[Checkpoint, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{src}: needs at least one [[checkpoints]] entry (name, ckpt)")
    out, seen = [], set()
    for i, entry in enumerate(raw):
        where = f"{src} [[checkpoints]] #{i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{where}: needs a `name` (string)")
        name = entry["name"]
        if name in seen:
            raise ConfigError(f"{where}: checkpoint name {name!r} appears twice")
        seen.add(name)
        rest = {k: v for k, v in entry.items() if k != "name"}
        if "ckpt" not in rest:
            raise ConfigError(f'{where} ({name}): needs `ckpt` (a checkpoint dir or "embedded")')
        out.append(Checkpoint(name, _options(f"{where} ({name})", rest, base)))
    return tuple(out)


def _matrix(src: Path, raw: Any, base: Path) -> dict[str, list[Any]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: [matrix] must be a table of axes (lists of values)")
    out = {}
    for axis, values in raw.items():
        where = f"{src} [matrix] {axis}"
        if axis == CHECKPOINT_AXIS:
            raise ConfigError(f"{where}: checkpoints are the [[checkpoints]] entries, not an axis")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: an axis is a non-empty list of values")
        vals = [_path(base, axis, _check_value(where, axis, v)) for v in values]
        if len(set(map(repr, vals))) != len(vals):
            raise ConfigError(f"{where}: a value appears twice")
        out[axis] = vals
    return out


_TOP = ("name", "defaults", "checkpoints", "matrix", "report")


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; every problem names the file and the key."""
    src = Path(path)
    try:
        raw = tomllib.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"suite file not found: {src}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{src}: not a readable TOML file ({e})") from None
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_TOP)}")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{src}: needs a `name` (string)")
    check_run_name(name, f"{src}: name")
    base = src.resolve().parent
    defaults = _options(f"{src} [defaults]", raw.get("defaults", {}), base)
    checkpoints = _checkpoints(src, raw.get("checkpoints"), base)
    matrix = _matrix(src, raw.get("matrix", {}), base)
    for ck in checkpoints:
        clash = sorted(set(ck.overrides) & set(matrix))
        if clash:
            raise ConfigError(
                f"{src}: checkpoint {ck.name} sets {', '.join(clash)}, which is also a [matrix] "
                "axis; set it in one place"
            )
    report = raw.get("report", {})
    if not isinstance(report, dict) or not set(report) <= {"metrics"}:
        raise ConfigError(f"{src}: [report] takes only `metrics` (a list of metric labels)")
    return Suite(name, src, defaults, checkpoints, matrix, report)


def assign_cells(cells: list[Cell], shard: Shard) -> list[Cell]:
    """The cells of one task of a `shard.count`-task array, each cell whole.

    With no more tasks than checkpoints, whole checkpoints go to tasks (largest first, to the
    least loaded task), so each task loads a checkpoint once. With more tasks, each checkpoint
    gets tasks in proportion to its cells and its cells are split into that many runs of
    consecutive cells. Tasks beyond the number of cells get none."""
    return distribute(cells, shard.count)[shard.index]


def distribute(cells: list[Cell], count: int) -> list[list[Cell]]:
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(c.checkpoint, []).append(c)
    out: list[list[Cell]] = [[] for _ in range(count)]
    if count <= len(groups):
        load = [0] * count
        for g in sorted(groups.values(), key=len, reverse=True):  # stable: file order breaks ties
            i = min(range(count), key=lambda k: (load[k], k))
            out[i] += g
            load[i] += len(g)
        return [sorted(o, key=cells.index) for o in out]
    tasks = {k: 1 for k in groups}
    for _ in range(count - len(groups)):
        open_ = [k for k in groups if tasks[k] < len(groups[k])]
        if not open_:
            break
        k = max(open_, key=lambda k: len(groups[k]) / tasks[k])  # first max: file order
        tasks[k] += 1
    i = 0
    for k, g in groups.items():
        n = tasks[k]
        for j in range(n):
            out[i] = g[j * len(g) // n : (j + 1) * len(g) // n]
            i += 1
    return out


def with_options(cell: Cell, **kw: Any) -> Cell:
    """The cell with run options changed that are not in its identity (batch size, device)."""
    return replace(cell, config=replace(cell.config, **kw))
