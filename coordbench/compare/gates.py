"""Pass/fail gates over a comparison, from a TOML file [ARCH-COMPARE];
`compare --gates` exits 1 if any fails.

A gate is `<target> <op> <number>` where target is a metric label (`mAP`, `AP50`, `F1@0.5`,
`parse.malformed_rate`, `wall_seconds`, or a raw eval/metrics.json key such as `bbox_ARs`),
optionally prefixed by `delta.`, `delta_pct.`, `delta_ci_low.` or `delta_ci_high.` (a run
against the baseline). Gates are written as a `rules = [...]` list of strings and/or as
`[[gate]]` tables with `metric`, `op`, `value` and an optional `run` (a run name, or "all"
to include the baseline). See configs/gates/example.toml.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordbench.compare.metrics import resolve_metric
from coordbench.errors import ConfigError

if TYPE_CHECKING:
    from coordbench.compare.core import CompareResult

OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
FIELDS = ("delta", "delta_pct", "delta_ci_low", "delta_ci_high")
_ROW_ATTR = {
    "delta": "delta",
    "delta_pct": "delta_pct",
    "delta_ci_low": "ci_low",
    "delta_ci_high": "ci_high",
}
RULE = re.compile(r"^\s*(?P<target>\S+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*$")
GATE_KEYS = {"metric", "op", "value", "run"}


@dataclass(frozen=True)
class Gate:
    rule: str  # canonical text, e.g. "delta.AP50 >= 0"
    field: str  # "value" or one of FIELDS
    metric: str  # catalogue label or raw key
    op: str
    threshold: float
    run: str | None = None  # None: every run but the baseline (the only run if there is one)
    where: str = ""  # file:line, for messages


@dataclass
class GateResult:
    rule: str
    run: str
    value: float | None
    met: bool
    detail: str = ""


def _gate(target: str, op: str, value: Any, run: str | None, where: str, text: str) -> Gate:
    field, _, metric = (
        target.partition(".") if target.split(".", 1)[0] in FIELDS else ("value", "", target)
    )
    spec = resolve_metric(metric)
    if spec is None:
        raise ConfigError(
            f"{where}: gate {text!r}: unknown metric {metric!r} (e.g. mAP, AP50, F1@0.5, "
            "parse.malformed_rate, wall_seconds, bbox_ARs)"
        )
    if op not in OPS:
        raise ConfigError(f"{where}: gate {text!r}: op must be one of {', '.join(OPS)}, got {op!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: gate {text!r}: value must be a number, got {value!r}")
    try:
        threshold = float(value)
    except ValueError:
        raise ConfigError(
            f"{where}: gate {text!r}: value must be a number, got {value!r}"
        ) from None
    if not math.isfinite(threshold):
        raise ConfigError(f"{where}: gate {text!r}: value must be finite")
    prefix = "" if field == "value" else f"{field}."
    return Gate(f"{prefix}{spec.label} {op} {value}", field, spec.label, op, threshold, run, where)


def parse_rule(text: str, where: str = "gate") -> Gate:
    """`"delta.AP50 >= 0"` -> Gate; ConfigError naming `where` and the rule when malformed."""
    if not isinstance(text, str):
        raise ConfigError(f'{where}: a rule must be a string like "mAP >= 0.30", got {text!r}')
    m = RULE.match(text)
    if m is None:
        raise ConfigError(
            f'{where}: gate {text!r}: expected `<metric> <op> <number>`, e.g. "mAP >= 0.30"'
        )
    return _gate(m["target"], m["op"], m["value"], None, where, text)


def _line_of(lines: list[str], needle: str, default: int) -> int:
    for i, line in enumerate(lines, 1):
        if needle in line:
            return i
    return default


def _read_toml(path: Path) -> tuple[str, dict]:
    """The text of a gates file and its parsed TOML; read and syntax errors as ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read gates file {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        raise ConfigError(f"{path}{':' + m[1] if m else ''}: invalid TOML: {e}") from None
    return text, data


def _table_gate(t: Any, where: str) -> Gate:
    """One `[[gate]]` table as a Gate; `where` names the file, line and table number."""
    extra = set(t) - GATE_KEYS
    if extra or not {"metric", "op", "value"} <= set(t):
        raise ConfigError(
            f"{where}: a [[gate]] needs metric, op, value (and optional run); "
            f"got {', '.join(sorted(t)) or 'nothing'}"
        )
    run = t.get("run")
    if run is not None and not isinstance(run, str):
        raise ConfigError(f'{where}: `run` must be a run name or "all"')
    text_rule = f"{t['metric']} {t['op']} {t['value']}"
    return _gate(str(t["metric"]), str(t["op"]), t["value"], run, where, text_rule)


def load_gates(path: str | Path) -> list[Gate]:
    """Read a gates TOML file; every error is one line naming the file and the line or rule."""
    path = Path(path)
    text, data = _read_toml(path)
    unknown = set(data) - {"rules", "gate"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; expected `rules` and/or [[gate]]"
        )
    lines = text.splitlines()
    gates = []
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{path}: `rules` must be a list of strings")
    for i, rule in enumerate(rules, 1):
        line = _line_of(lines, str(rule), _line_of(lines, "rules", 1))
        gates.append(parse_rule(rule, f"{path}:{line} (rule {i})"))
    tables = data.get("gate", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: `gate` must be an array of tables ([[gate]])")
    gate_lines = [i for i, line in enumerate(lines, 1) if line.strip().startswith("[[gate]]")]
    for i, t in enumerate(tables):
        where = f"{path}:{gate_lines[i] if i < len(gate_lines) else '?'} ([[gate]] {i + 1})"
        gates.append(_table_gate(t, where))
    if not gates:
        raise ConfigError(f'{path}: no gates (add `rules = ["mAP >= 0.30"]` or a [[gate]] table)')
    return gates


def _targets(gate: Gate, res: CompareResult) -> list[str]:
    names = [r.name for r in res.runs]
    if gate.run == "all":
        return names
    if gate.run is not None:
        return [gate.run]
    return [n for n in names if n != res.baseline] or names


def _value(gate: Gate, res: CompareResult, run: str) -> tuple[float | None, str]:
    if gate.field == "value":
        if not any(r.name == run for r in res.runs):
            return None, f"no run named {run!r}"
        v = res.value(run, gate.metric)
        return v, "" if v is not None else "metric missing for this run"
    if run == res.baseline:
        return None, "the baseline has no delta"
    row = res.delta(run, gate.metric)
    if row is None:
        return None, f"no delta for {run!r} (not compared against a baseline)"
    v = getattr(row, _ROW_ATTR[gate.field])
    return v, "" if v is not None else f"{gate.field} unavailable"


def evaluate_gates(gates: list[Gate], res: CompareResult) -> list[GateResult]:
    """Each gate on each run it targets; a missing value is NOT MET (fail closed)."""
    out = []
    for g in gates:
        for run in _targets(g, res):
            v, why = _value(g, res, run)
            met = v is not None and not math.isnan(v) and OPS[g.op](v, g.threshold)
            out.append(GateResult(g.rule, run, v, met, why))
    return out
