"""Read what `compare` needs from a run dir (rundir schema, [UP-RUN-DIR]), tolerating partial runs.

A run dir is anything with `run.json` (ours) or `summary.json` (ours or upstream's). A run
without `summary.json`, or whose run.json provenance lacks `finished_at`, is partial: it is
loaded (so compare can say how far it got) but carries no metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordbench.errors import ArtifactError
from coordbench.metrics.summary import PARSE_STATUSES
from coordbench.rundir import files as A
from coordbench.rundir import layout as L
from coordbench.rundir.csvcells import dict_rows, restore_cell

EVAL_METRICS = f"{L.EVAL_DIR}/{L.METRICS}"
PER_CLASS = f"{L.EVAL_DIR}/{L.PER_CLASS}"
PER_IMAGE = f"{L.EVAL_DIR}/{L.PER_IMAGE}"


@dataclass
class SampleInfo:
    """One gt_vs_pred.jsonl line, reduced to what comparisons use."""

    key: str  # sample_id (ours) or the image path (upstream records have no sample_id)
    image: str
    width: int | None
    height: int | None
    parse_status: str
    gt_descs: tuple[str, ...]
    gt_boxes: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (desc, box / image size), sorted


@dataclass
class RunData:
    """One run dir as compare sees it; plain data, no open files."""

    path: Path
    name: str
    identity: dict[str, Any] | None
    identity_hash: str | None
    config: dict[str, Any]
    provenance: dict[str, Any]
    summary: dict[str, Any] | None
    metrics: dict[str, Any]
    parse_rates: dict[str, Any]
    per_class: dict[str, float]
    per_image: dict[str, dict[str, Any]]  # sample key -> per_image.json entry
    samples: dict[str, SampleInfo]  # sample key -> info, dataset order
    partial_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return self.partial_reason is not None

    @property
    def batch_size(self) -> int | None:
        v = self.config.get("batch_size", self.provenance.get("batch_size"))
        return v if isinstance(v, int) else None


def run_dir_of(path: str | Path) -> Path:
    """The run dir for a CLI argument: the dir itself, or the folder of a
    summary.json / run.json."""
    p = Path(path)
    if p.is_file() and p.name in (A.SUMMARY, A.RUN_JSON):
        return p.parent
    if not p.exists():
        raise ArtifactError(f"run dir not found: {p}")
    if not p.is_dir():
        raise ArtifactError(f"{p} is not a run dir (pass the run dir or its summary.json)")
    if not (p / A.RUN_JSON).exists() and not (p / A.SUMMARY).exists():
        raise ArtifactError(f"{p} is not a run dir (no {A.RUN_JSON} or {A.SUMMARY} inside)")
    return p


def sample_key(rec: dict[str, Any], position: int) -> str:
    if rec.get("sample_id") is not None:
        return str(rec["sample_id"])
    if rec.get("image"):
        return str(rec["image"])
    return f"#{position}"


def _samples(run_dir: Path) -> dict[str, SampleInfo]:
    # `coordbench eval --out DIR` writes the scored records and summary but no gt_vs_pred.jsonl
    src = run_dir / A.GT_VS_PRED if (run_dir / A.GT_VS_PRED).exists() else run_dir / A.SCORED
    recs, _ = A.read_jsonl(src)
    out: dict[str, SampleInfo] = {}
    for i, r in enumerate(recs):
        key = sample_key(r, i)
        descs = tuple(
            str(o.get("desc", "")).strip() for o in r.get("gt") or [] if isinstance(o, dict)
        )
        out[key] = SampleInfo(
            key,
            str(r.get("image", "")),
            r.get("width"),
            r.get("height"),
            str(r.get("parse_status", "ok")),
            descs,
            _gt_boxes(r),
        )
    return out


def _gt_boxes(rec: dict[str, Any]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """The record's GT as (desc, box in image fractions), sorted: comparable across presets."""
    w, h = rec.get("width"), rec.get("height")
    if not (isinstance(w, int | float) and isinstance(h, int | float) and w > 0 and h > 0):
        return ()
    out = []
    for o in rec.get("gt") or []:
        pts = o.get("points") if isinstance(o, dict) else None
        if not (isinstance(pts, list) and len(pts) == 4):
            continue
        try:
            box = tuple(float(v) / s for v, s in zip(pts, (w, h, w, h), strict=True))
        except (TypeError, ValueError):
            continue
        out.append((str(o.get("desc", "")).strip(), box))
    return tuple(sorted(out))


def _per_class(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    for row in dict_rows(text):
        try:
            out[restore_cell(row["category"])] = float(row["AP"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _per_image(path: Path, samples: dict[str, SampleInfo]) -> dict[str, dict[str, Any]]:
    """per_image.json entries keyed like the samples: by position when files line up,
    else by image."""
    if not path.exists():
        return {}
    rows = A.read_json(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ArtifactError(f"{path}: expected a list of per-image objects")
    infos = list(samples.values())
    if len(rows) == len(infos) and all(
        r.get("file_name") == s.image for r, s in zip(rows, infos, strict=True)
    ):
        return {s.key: r for r, s in zip(rows, infos, strict=True)}
    by_image: dict[str, str] = {}
    for s in infos:
        by_image.setdefault(s.image, s.key)
    return {by_image[r["file_name"]]: r for r in rows if r.get("file_name") in by_image}


def _parse_rates(summary: dict[str, Any] | None, samples: dict[str, SampleInfo]) -> dict[str, Any]:
    rates = _obj(_obj(summary).get("parse")).get("rates")
    if isinstance(rates, dict) and rates:
        return rates
    if not samples:
        return {}

    n = len(samples)
    return {s: sum(1 for x in samples.values() if x.parse_status == s) / n for s in PARSE_STATUSES}


def _obj(x: Any) -> dict[str, Any]:
    """x when it is a JSON object, else {}: a hand-edited field never becomes a traceback."""
    return x if isinstance(x, dict) else {}


def _json_object(path: Path) -> dict[str, Any] | None:
    """A JSON file that must hold an object (None when absent); anything else is a named error."""
    if not path.exists():
        return None
    data = A.read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def load_run(path: str | Path) -> RunData:
    """Load one run dir (or its summary.json); raises ArtifactError naming a path
    that is not one."""
    run_dir = run_dir_of(path)
    head = _json_object(run_dir / A.RUN_JSON) or {}
    summary = _json_object(run_dir / A.SUMMARY)
    samples = _samples(run_dir)
    prov = _obj(head.get("provenance"))
    partial = None
    if summary is None:
        partial = f"no {A.SUMMARY} ({len(samples)} samples generated so far)"
    elif head and not prov.get("finished_at"):
        partial = "run.json has no finished_at (still running, or killed before it finished)"
    metrics: dict[str, Any] = {}
    if summary is not None:
        if (run_dir / EVAL_METRICS).exists():
            metrics.update(_obj(_obj(_json_object(run_dir / EVAL_METRICS)).get("metrics")))
        metrics.update({k: v for k, v in _obj(summary.get("metrics")).items() if v is not None})
    notes = [] if head else [f"no {A.RUN_JSON}: identity unknown (an upstream run dir?)"]
    return RunData(
        path=run_dir,
        name=run_dir.name,
        identity=head.get("identity"),
        identity_hash=head.get("identity_hash") or (summary or {}).get("identity_hash"),
        config=_obj(head.get("config")),
        provenance=prov,
        summary=summary,
        metrics={k: v for k, v in metrics.items() if _finite_or_str(v)},
        parse_rates=_parse_rates(summary, samples),
        per_class=_per_class(run_dir / PER_CLASS),
        per_image=_per_image(run_dir / PER_IMAGE, samples) if summary is not None else {},
        samples=samples,
        partial_reason=partial,
        notes=notes,
    )


def _finite_or_str(v: Any) -> bool:
    return not (isinstance(v, float) and math.isnan(v))


def unique_names(runs: list[RunData]) -> None:
    """Give runs with the same dir name distinct names (parent/name, then a counter)."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
    for r in runs:
        if seen[r.name] > 1:
            r.name = f"{r.path.parent.name}/{r.path.name}"
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
        if counts[r.name] > 1:
            r.name = f"{r.name}#{counts[r.name]}"
