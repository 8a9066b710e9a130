"""The append-only benchmark log: one JSON line per `coordbench run` and `coordbench compare`.

Lines are only ever appended (O_APPEND, one write per entry, fsync), never rewritten. If a
previous writer died mid-line, the next entry starts on a fresh line, so the torn fragment
stays a single unreadable line that readers skip and count.

Where: `$COORDBENCH_BENCHMARK_LOG` if set; else next to the runs folder of the run dir
(`output/runs/NAME` -> `output/benchmark_log.jsonl`); else `output/benchmark_log.jsonl`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from coordbench.compare.format import fmt_delta, fmt_value
from coordbench.compare.metrics import KEY_METRICS, catalogue, metric_value
from coordbench.errors import ArtifactError
from coordbench.rundir import files as A
from coordbench.rundir.files import parse_jsonl_lenient
from coordbench.tasks import task_of

if TYPE_CHECKING:
    from coordbench.compare.core import CompareResult
    from coordbench.compare.gates import GateResult

log = logging.getLogger("coordbench")

LOG_NAME = "benchmark_log.jsonl"
ENV_VAR = "COORDBENCH_BENCHMARK_LOG"
SCHEMA_VERSION = 1


def default_log_path(run_dir: str | Path | None = None) -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    if run_dir is not None:
        rd = Path(run_dir)
        return (rd.parent.parent if rd.parent.name == "runs" else rd.parent) / LOG_NAME
    return Path("output") / LOG_NAME


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def append_entry(entry: dict[str, Any], log_path: str | Path) -> Path:
    """Append one JSON line; existing bytes are never touched."""
    path = Path(log_path)
    line = orjson.dumps(entry) + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: the last byte
    except OSError as e:
        raise ArtifactError(f"cannot open benchmark log {path}: {e.strerror or e}") from None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a torn last line from a killed writer stays on its own line
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except OSError as e:
        raise ArtifactError(f"cannot append to benchmark log {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return path


def _key_metrics(
    metrics: dict[str, Any], parse_rates: dict[str, Any], identity: dict[str, Any]
) -> dict[str, float | None]:
    """The run's task's log metrics (a run without a recorded task is detection)."""
    task = task_of(identity)
    specs = {m.label: m for m in catalogue(task)}
    return {m: metric_value(specs[m], metrics, parse_rates, {}) for m in task.log_metrics}


def _gates(gates: Sequence[GateResult] | None) -> list[dict[str, Any]] | None:
    return None if gates is None else [asdict(g) for g in gates]


def run_entry(
    run_dir: str | Path,
    summary: dict[str, Any],
    gates: Sequence[GateResult] | None = None,
    kind: str = "run",
) -> dict[str, Any]:
    """One log line for a run; kind "rescore" when a finished run was scored again."""
    rd = Path(run_dir)
    head = A.read_json(rd / A.RUN_JSON) if (rd / A.RUN_JSON).exists() else {}
    ident, prov = head.get("identity") or {}, head.get("provenance") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "timestamp": _now(),
        "run_dir": str(rd),
        "name": rd.name,
        "identity_hash": summary.get("identity_hash") or head.get("identity_hash"),
        "checkpoint": (ident.get("checkpoint") or {}).get("path_name"),
        "preset": ident.get("preset"),
        "dataset": (ident.get("dataset") or {}).get("path_name"),
        "seed": ident.get("seed"),
        "package_version": ident.get("package_version"),
        "n_samples": summary.get("total_emitted"),
        "metrics": _key_metrics(
            summary.get("metrics") or {}, (summary.get("parse") or {}).get("rates") or {}, ident
        ),
        "wall_seconds": prov.get("wall_seconds"),
        "gates": _gates(gates),
        "gates_met": None if gates is None else all(g.met for g in gates),
    }


def append_run_entry(
    run_dir: str | Path,
    summary: dict[str, Any],
    log_path: str | Path | None = None,
    gates: Sequence[GateResult] | None = None,
    kind: str = "run",
) -> Path | None:
    """Log a finished run (called at the end of `coordbench run`). A log that cannot be written
    is a warning, not a failure: the run itself is complete and on disk."""
    path = Path(log_path) if log_path is not None else default_log_path(run_dir)
    try:
        return append_entry(run_entry(run_dir, summary, gates, kind), path)
    except ArtifactError as e:
        log.warning("%s", e)
        return None


def compare_entry(
    result: CompareResult, gates: Sequence[GateResult] | None = None
) -> dict[str, Any]:
    keys = [m for m in KEY_METRICS if m in result.metrics]
    deltas = {
        p.run: {
            d.metric: {
                "delta": d.delta,
                "ci_low": d.ci_low,
                "ci_high": d.ci_high,
                "verdict": d.verdict,
            }
            for d in p.deltas
            if d.metric in keys
        }
        for p in result.pairs
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "compare",
        "timestamp": _now(),
        "baseline": result.baseline,
        "runs": [
            {
                "name": r.name,
                "run_dir": r.path,
                "identity_hash": r.identity_hash,
                "n_samples": r.n_samples,
                "partial": r.partial,
                "metrics": {m: r.values.get(m) for m in keys},
            }
            for r in result.runs
        ],
        "deltas": deltas,
        "n_boot": result.n_boot,
        "seed": result.seed,
        "caveats": result.caveats,
        "gates": _gates(gates),
        "gates_met": None if gates is None else all(g.met for g in gates),
    }


def fingerprint(entry: dict[str, Any]) -> str:
    """What a compare entry says, without its time: equal for a re-run of the same comparison."""
    body = {k: v for k, v in entry.items() if k not in ("timestamp", "fingerprint")}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _logged(path: Path, fp: str) -> bool:
    if not path.is_file():
        return False
    entries, _ = parse_jsonl_lenient(path.read_bytes())
    return any(e.get("fingerprint") == fp for e in entries if isinstance(e, dict))


def append_compare_entry(
    result: CompareResult,
    gates: Sequence[GateResult] | None = None,
    log_path: str | Path | None = None,
) -> Path:
    """Log a comparison; default path from the baseline's run dir (see module doc). A comparison
    already in the log (same inputs, same numbers) is not appended again."""
    if log_path is None:
        base = next((r.path for r in result.runs if r.name == result.baseline), None)
        log_path = default_log_path(base or (result.runs[0].path if result.runs else None))
    entry = compare_entry(result, gates)
    entry["fingerprint"] = fingerprint(entry)
    if _logged(Path(log_path), entry["fingerprint"]):
        return Path(log_path)
    return append_entry(entry, log_path)


def read_log(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Entries in order and the number of unreadable (torn) lines skipped."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(
            f"benchmark log not found: {p} (it is written by `coordbench run` and `compare`)"
        )
    rows, bad = parse_jsonl_lenient(p.read_bytes())
    entries = [e for r in rows if (e := _entry(r)) is not None]
    if len(entries) < len(rows):
        log.warning(
            "%s: %d entries are not log objects and were skipped", p, len(rows) - len(entries)
        )
    return entries, bad + len(rows) - len(entries)


# field -> the type a log entry holds there; a hand-edited or foreign line of another shape is
# read with those fields emptied (and named), never a traceback
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "timestamp": str,
    "run_dir": str,
    "name": str,
    "metrics": dict,
    "gates": list,
    "runs": list,
}


def _entry(row: Any) -> dict[str, Any] | None:
    if not isinstance(row, dict):
        return None
    out = dict(row)
    for key, typ in _FIELD_TYPES.items():
        if key in out and out[key] is not None and not isinstance(out[key], typ):
            del out[key]
    if isinstance(out.get("gates"), list):
        out["gates"] = [g for g in out["gates"] if isinstance(g, dict)]
    if isinstance(out.get("metrics"), dict):
        out["metrics"] = {k: v for k, v in out["metrics"].items() if isinstance(k, str)}
    return out


LOG_COLUMNS = ("mAP", "AP50", "F1@0.5", "pred_total", "parse.malformed_rate")


def _cell(metric: str, v: Any) -> str:
    return fmt_value(metric, v) if isinstance(v, int | float) else "-"


def _gates_cell(e: dict[str, Any]) -> str:
    gates = e.get("gates")
    if not gates:
        return "-"
    failed = [f"{g['rule']} ({g['run']})" for g in gates if not g.get("met")]
    head = f"{len(gates) - len(failed)}/{len(gates)} met"
    if not failed:
        return head
    more = f", +{len(failed) - 3} more" if len(failed) > 3 else ""
    return f"{head}; NOT MET: {', '.join(failed[:3])}{more}"


def _row(e: dict[str, Any]) -> list[str]:
    ts = str(e.get("timestamp", "-"))
    if e.get("kind") == "compare":
        pairs = e.get("deltas") or {}
        first = next(iter(pairs), None)
        what = f"{first} vs {e.get('baseline')}" if first else f"{e.get('baseline')} (alone)"
        if len(pairs) > 1:
            what += f" (+{len(pairs) - 1} more)"
        d = pairs.get(first, {}) if first else {}
        cells = []
        for m in LOG_COLUMNS:
            row = d.get(m) or {}
            delta = row.get("delta")
            cells.append(
                "-"
                if delta is None
                else f"Δ {fmt_delta(m, delta)} {row.get('verdict', '')}".rstrip()
            )
        return [ts, "compare", what, "-", "-", *cells, _gates_cell(e)]
    m = e.get("metrics") or {}
    return [
        ts,
        str(e.get("kind", "?")),
        str(e.get("name") or e.get("run_dir") or "-"),
        str(e.get("identity_hash") or "-")[:12],
        str(e.get("n_samples", "-")),
        *(_cell(c, m.get(c)) for c in LOG_COLUMNS),
        _gates_cell(e),
    ]


LOG_HEADER = ["time (UTC)", "kind", "run", "identity", "samples", *LOG_COLUMNS, "gates"]


def select_entries(
    entries: list[dict[str, Any]], *, last: int | None = None, since: str | None = None
) -> list[dict[str, Any]]:
    """Entries at or after `since` (an ISO date or time, UTC), then the last `last` of them."""
    if since is not None:
        start = _parse_time(since, "--since")
        entries = [e for e in entries if (t := _entry_time(e)) is not None and t >= start]
    if last is not None:
        entries = entries[-last:] if last > 0 else []
    return entries


def _parse_time(text: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ArtifactError(
            f"{what} {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _entry_time(entry: dict[str, Any]) -> datetime | None:
    try:
        return _parse_time(str(entry.get("timestamp")), "timestamp")
    except ArtifactError:
        return None


def render_log(entries: list[dict[str, Any]], fmt: str = "md", skipped: int = 0) -> str:
    """The log as a markdown table or CSV (one row per entry, oldest first) or a JSON array."""
    if fmt == "json":
        return orjson.dumps(entries, option=orjson.OPT_INDENT_2).decode() + "\n"
    header = LOG_HEADER
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(_row(e) for e in entries)
        return buf.getvalue()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _row(e)) + " |" for e in entries]
    if skipped:
        lines.append(f"\n{skipped} unreadable line(s) skipped (a writer killed mid-line)")
    return "\n".join(lines) + "\n"
