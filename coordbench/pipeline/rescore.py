"""`coordbench eval` and `coordbench merge`: re-score recorded outputs without a model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from coordbench.config.presets import load_prompt_preset
from coordbench.config.run import RunConfig, config_from_run_json
from coordbench.errors import ArtifactError
from coordbench.metrics.scoring import (
    EvalOptions,
    evaluate_records,
    read_records,
    write_eval_dir,
)
from coordbench.metrics.summary import build_summary, format_summary, metric_lines
from coordbench.parse.answer import parse_for_preset
from coordbench.pipeline.finalize import score_run_records
from coordbench.rundir import files as A
from coordbench.rundir import layout as L


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


def eval_run_dir(run_dir: Path, out: Path | None, overrides: dict[str, Any]) -> str:
    cfg = replace(
        config_from_run_json(A.read_json(run_dir / A.RUN_JSON), run_dir / A.RUN_JSON),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    recs, _ = A.read_jsonl(run_dir / A.GT_VS_PRED)
    if not recs:
        raise ArtifactError(f"{run_dir / A.GT_VS_PRED} has no records")
    traces_rows, _ = A.read_jsonl(run_dir / A.TRACE, require=("sample_id",))
    traces = {t["sample_id"]: t for t in traces_rows}
    recs = reparse_records(recs, cfg)
    eval_dir = out or run_dir / L.EVAL_DIR
    if out is not None:  # keep the run's own derived files untouched; write everything under out
        eval_dir = Path(out) / L.EVAL_DIR
    result = score_run_records(recs, traces, cfg, eval_dir)
    head = A.read_json(run_dir / A.RUN_JSON)
    summary = build_summary(head, recs, result)
    A.write_json(eval_dir.parent / A.SUMMARY, summary)
    return format_summary(summary, None, str(eval_dir.parent))


def eval_scored_file(
    path: Path, out: Path | None, overrides: dict[str, Any], tolerant: bool
) -> str:
    recs, skipped = read_records(path, tolerant=tolerant)
    opts = EvalOptions(**{k: v for k, v in overrides.items() if v is not None})
    result = evaluate_records(recs, opts, invalid_json=skipped)
    eval_dir = out or path.parent / L.EVAL_DIR
    write_eval_dir(result, eval_dir)
    lines = [
        f"scored {len(recs)} records from {path} -> {eval_dir}"
        + (f" ({skipped} malformed lines skipped)" if skipped else "")
    ]
    return "\n".join([*lines, "", *metric_lines(result.metrics)])


def eval_path(
    path: Path,
    *,
    out: str | None,
    scorer: str | None,
    semantic_threshold: float | None,
    tolerant: bool = False,
) -> str:
    overrides = {"scorer": scorer, "semantic_threshold": semantic_threshold}
    if path.is_dir():
        if not (path / A.RUN_JSON).exists():
            scored = path / A.SCORED
            if scored.exists():
                return eval_scored_file(scored, Path(out) if out else None, overrides, tolerant)
            raise ArtifactError(f"{path} is not a run dir (no {A.RUN_JSON}) and has no {A.SCORED}")
        return eval_run_dir(path, Path(out) if out else None, overrides)
    return eval_scored_file(path, Path(out) if out else None, overrides, tolerant)
