"""`coordbench eval` and `coordbench merge`: re-score recorded outputs without a model."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordbench.config.presets import load_prompt_preset
from coordbench.config.run import RunConfig, config_from_run_json
from coordbench.errors import ArtifactError
from coordbench.metrics.eval_files import drop_matches
from coordbench.metrics.ingest import records_without_size
from coordbench.metrics.summary import build_summary, format_summary
from coordbench.parse.answer import parse_for_preset
from coordbench.pipeline.finalize import score_run_records
from coordbench.pipeline.score_file import (
    add_warnings,
    eval_file_path,
    eval_overrides,
    size_warnings,
)
from coordbench.rundir import files as A
from coordbench.rundir import layout as L
from coordbench.tasks import task_of

log = logging.getLogger("coordbench")


def reparse_records(recs: list[dict], cfg: RunConfig) -> list[dict]:
    """Rebuild each record's parse fields from its raw text (parse options of the run)."""
    prompt = load_prompt_preset(cfg.prompt)
    popts = cfg.parse_options(prompt.field_order)
    out = []
    sizeless = set(records_without_size(recs))  # the scorer drops them; nothing to re-parse
    for i, r in enumerate(recs):
        if "raw_text" not in r or i in sizeless:
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


def _expected_samples(head: Any) -> int | None:
    ident = head.get("identity") if isinstance(head, dict) else None
    dataset = ident.get("dataset") if isinstance(ident, dict) else None
    n = dataset.get("num_samples") if isinstance(dataset, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def check_run_rows(path: Path, recs: list[dict], expected: int | None) -> None:
    """Each of the run's samples at most once, and no sample from outside the run: a run
    writes sample `index` 0 .. num_samples-1 once each, so a repeated row (a pasted or doubled
    batch) or an index past num_samples (rows of a longer run, e.g. past --limit) would be
    scored as if the run had produced it."""
    seen: dict[Any, int] = {}
    for line, r in enumerate(recs, 1):
        idx, sid = r.get("index"), r.get("sample_id")
        key = ("index", idx) if isinstance(idx, int) else ("sample_id", sid)
        if key[1] is None:
            continue  # neither: nothing to check it by (scored as before)
        if isinstance(idx, int) and expected is not None and not 0 <= idx < expected:
            raise ArtifactError(
                f"{path}:{line}: sample {sid!r} has index {idx}, outside this run's "
                f"{expected} samples (0..{expected - 1}): a row of another run (e.g. past "
                "--limit); remove it or evaluate the run it came from"
            )
        if not isinstance(key[1], int | str):
            continue
        if key in seen:
            raise ArtifactError(
                f"{path}:{line}: sample {sid!r} (index {idx}) repeats line {seen[key]}: a run "
                "writes each sample once; remove the duplicate rows"
            )
        seen[key] = line


def eval_run_dir(
    run_dir: Path, out: Path | None, overrides: dict[str, Any], matches: bool = True
) -> str:
    overrides = dict(overrides)
    vocabulary = overrides.pop("categories", None)  # an EvalOptions field, not a RunConfig one
    cfg = replace(
        config_from_run_json(A.read_json(run_dir / A.RUN_JSON), run_dir / A.RUN_JSON),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    recs, good = A.read_jsonl(run_dir / A.GT_VS_PRED)
    if not recs:
        raise ArtifactError(f"{run_dir / A.GT_VS_PRED} has no records")
    head = A.read_json(run_dir / A.RUN_JSON)
    check_run_rows(run_dir / A.GT_VS_PRED, recs, _expected_samples(head))
    warnings = size_warnings(recs, str(run_dir / A.GT_VS_PRED))
    _warn_short(run_dir, recs, good)
    traces_rows, trace_good = A.read_jsonl(run_dir / A.TRACE, require=("sample_id",))
    _warn_torn(run_dir / A.TRACE, len(traces_rows), trace_good)
    traces = {t["sample_id"]: t for t in traces_rows}
    recs = reparse_records(recs, cfg)
    eval_dir = out or run_dir / L.EVAL_DIR
    if out is not None:  # keep the run's own derived files untouched; write everything under out
        eval_dir = Path(out) / L.EVAL_DIR
    task = task_of(head.get("identity") if isinstance(head, dict) else None)
    result = score_run_records(recs, traces, cfg, eval_dir, vocabulary=vocabulary, task=task)
    if not matches:  # --no-matches: written by the shared finalize step, removed here
        drop_matches(eval_dir)
    add_warnings(eval_dir / L.METRICS, warnings)
    summary = build_summary(head, recs, result, headline=task.headline_keys())
    if warnings:
        summary["warnings"] = warnings
    A.write_json(eval_dir.parent / A.SUMMARY, summary)
    text = format_summary(
        summary, None, str(eval_dir.parent), headline=task.headline_keys(), counts=task.count_keys()
    )
    return "\n".join([*(f"warning: {w}" for w in warnings), text])


def eval_path(
    path: Path,
    *,
    out: str | None,
    scorer: str | None,
    semantic_threshold: float | None,
    tolerant: bool = False,
    categories: str | None = None,
    matches: bool = True,
) -> str:
    """A run dir (re-parsed and re-scored) or a scored-records file (`score_file`);
    `matches=False` leaves no matches*.jsonl in the eval dir (`eval --no-matches`)."""
    if path.is_dir() and (path / A.RUN_JSON).exists():
        overrides = eval_overrides(scorer, semantic_threshold, categories)
        return eval_run_dir(path, Path(out) if out else None, overrides, matches)
    return eval_file_path(
        path,
        out=out,
        scorer=scorer,
        semantic_threshold=semantic_threshold,
        tolerant=tolerant,
        categories=categories,
        matches=matches,
    )
