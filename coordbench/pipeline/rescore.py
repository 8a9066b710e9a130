"""`coordbench eval` and `coordbench merge`: re-score recorded outputs without a model."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordbench.config.presets import load_prompt_preset
from coordbench.config.run import RunConfig, config_from_run_json
from coordbench.errors import ArtifactError
from coordbench.metrics.summary import build_summary, format_summary
from coordbench.parse.answer import parse_for_preset
from coordbench.pipeline.finalize import score_run_records
from coordbench.pipeline.score_file import eval_file_path, eval_overrides
from coordbench.rundir import files as A
from coordbench.rundir import layout as L
from coordbench.tasks import task_of

log = logging.getLogger("coordbench")


def reparse_records(recs: list[dict], cfg: RunConfig) -> list[dict]:
    """Rebuild each record's parse fields from its raw text (parse options of the run)."""
    prompt = load_prompt_preset(cfg.prompt)
    popts = cfg.parse_options(prompt.field_order)
    out = []
    for r in recs:
        if "raw_text" not in r:
            out.append(r)
            continue
        p = parse_for_preset(
            r["raw_text"],
            prompt,
            width=r["width"],
            height=r["height"],
            options=popts,
            finished=r.get("finish_reason") != "length",
        )
        out.append({**r, **p.upstream_fields(), **p.status_fields()})
    return out


def _warn_torn(path: Path, rows: int, good: int) -> None:
    if path.exists() and good < path.stat().st_size:
        log.warning(
            "%s:%d: torn last line skipped (a writer was interrupted); using %d lines",
            path,
            rows + 1,
            rows,
        )


def _warn_short(run_dir: Path, recs: list[dict], good: int) -> None:
    """Say when fewer records are scored than the file holds (a torn last line) or than the
    run's identity has samples (an unfinished run): the metrics then cover part of the data."""
    path = run_dir / A.GT_VS_PRED
    _warn_torn(path, len(recs), good)
    head = A.read_json(run_dir / A.RUN_JSON)
    ident = head.get("identity") if isinstance(head, dict) else None
    dataset = ident.get("dataset") if isinstance(ident, dict) else None
    expected = dataset.get("num_samples") if isinstance(dataset, dict) else None
    if isinstance(expected, int) and len(recs) < expected:
        log.warning(
            "%s: %d of the run's %d samples have a record; the metrics cover those only",
            path,
            len(recs),
            expected,
        )


def check_run_records(path: Path, recs: list[dict], expected: int | None) -> None:
    """A run's records are its samples, each once: duplicated rows, rows past the run's sample
    count (pasted from another run) and records without a usable size are refused by position,
    never scored (they would move every number, or drop images without a word)."""
    seen: dict[Any, int] = {}
    for line, r in enumerate(recs, 1):
        sid = r.get("sample_id")
        if sid in seen:
            raise ArtifactError(
                f"{path}: sample {sid!r} appears twice (lines {seen[sid]} and {line}); a run "
                "holds each sample once: remove the duplicated rows"
            )
        seen[sid] = line
        idx = r.get("index")
        if isinstance(expected, int) and isinstance(idx, int) and not 0 <= idx < expected:
            raise ArtifactError(
                f"{path}:{line}: sample {sid!r} has index {idx}, outside this run's "
                f"{expected} samples (a row of another run?)"
            )
        w, h = r.get("width"), r.get("height")
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise ArtifactError(
                f"{path}:{line}: sample {sid!r} has no positive integer width/height "
                f"(width={w!r}, height={h!r}): its boxes cannot be scored"
            )
    if isinstance(expected, int) and len(recs) > expected:
        raise ArtifactError(f"{path}: {len(recs)} records for a run of {expected} samples")


def eval_run_dir(run_dir: Path, out: Path | None, overrides: dict[str, Any]) -> str:
    overrides = dict(overrides)
    vocabulary = overrides.pop("categories", None)  # an EvalOptions field, not a RunConfig one
    cfg = replace(
        config_from_run_json(A.read_json(run_dir / A.RUN_JSON), run_dir / A.RUN_JSON),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    recs, good = A.read_jsonl(run_dir / A.GT_VS_PRED)
    if not recs:
        raise ArtifactError(f"{run_dir / A.GT_VS_PRED} has no records")
    head0 = A.read_json(run_dir / A.RUN_JSON)
    dataset = (
        ((head0.get("identity") or {}).get("dataset") or {}) if isinstance(head0, dict) else {}
    )
    check_run_records(run_dir / A.GT_VS_PRED, recs, dataset.get("num_samples"))
    _warn_short(run_dir, recs, good)
    traces_rows, trace_good = A.read_jsonl(run_dir / A.TRACE, require=("sample_id",))
    _warn_torn(run_dir / A.TRACE, len(traces_rows), trace_good)
    traces = {t["sample_id"]: t for t in traces_rows}
    recs = reparse_records(recs, cfg)
    eval_dir = out or run_dir / L.EVAL_DIR
    if out is not None:  # keep the run's own derived files untouched; write everything under out
        eval_dir = Path(out) / L.EVAL_DIR
    head = A.read_json(run_dir / A.RUN_JSON)
    task = task_of(head.get("identity") if isinstance(head, dict) else None)
    result = score_run_records(recs, traces, cfg, eval_dir, vocabulary=vocabulary, task=task)
    summary = build_summary(head, recs, result, headline=task.headline_keys())
    A.write_json(eval_dir.parent / A.SUMMARY, summary)
    return format_summary(
        summary, None, str(eval_dir.parent), headline=task.headline_keys(), counts=task.count_keys()
    )


def eval_path(
    path: Path,
    *,
    out: str | None,
    scorer: str | None,
    semantic_threshold: float | None,
    tolerant: bool = False,
    categories: str | None = None,
) -> str:
    """A run dir (re-parsed and re-scored) or a scored-records file (`score_file`)."""
    if path.is_dir() and (path / A.RUN_JSON).exists():
        overrides = eval_overrides(scorer, semantic_threshold, categories)
        return eval_run_dir(path, Path(out) if out else None, overrides)
    return eval_file_path(
        path,
        out=out,
        scorer=scorer,
        semantic_threshold=semantic_threshold,
        tolerant=tolerant,
        categories=categories,
    )
