"""Derive every run artifact from gt_vs_pred.jsonl + pred_token_trace.jsonl, score, summarise.

Pure functions of those two files and the run's options: re-running finalize (after a resume,
a merge, or `coordbench eval`) writes byte-identical artifacts.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordbench.compare.benchlog import append_run_entry
from coordbench.confidence.score import confidence_for_record, postop_summary, scored_record
from coordbench.config.run import RunConfig
from coordbench.data.dataset import dataset_category_docs, dataset_vocabulary
from coordbench.metrics.summary import build_summary
from coordbench.parse.mismatch import dialect_check, prompt_check
from coordbench.parse.think import reasoning_tokens
from coordbench.pipeline.provenance import run_timing
from coordbench.report.html import write_run_report
from coordbench.rundir import files as A
from coordbench.rundir.layout import REPORT, RunDir
from coordbench.tasks import Task, get_task, task_of


def _load_run(run_dir: Path) -> tuple[list[dict], dict[str, dict]]:
    recs, _ = A.read_jsonl(run_dir / A.GT_VS_PRED)
    traces, _ = A.read_jsonl(run_dir / A.TRACE, require=("sample_id",))
    return recs, {t["sample_id"]: t for t in traces}


def dataset_categories(cfg: RunConfig) -> list[str] | None:
    """The dataset's declared vocabulary (`categories.json` next to its JSONL), else None."""
    return dataset_vocabulary(cfg.data)


def score_run_records(
    recs: list[dict],
    traces: dict[str, dict],
    cfg: RunConfig,
    eval_dir: Path,
    *,
    vocabulary: str | None = None,
    task: Task | None = None,
) -> Any:
    """Confidence -> scored records -> the task's one evaluation (detection: COCO, F1,
    calibration, diagnostics, with the run's EvalOptions); writes the eval dir and returns the
    result (summary.json reuses its dicts)."""
    copts = cfg.confidence_options()
    key = "token_logprobs_raw" if copts.logprob_source == "raw" else "token_logprobs"
    conf_lines, scored = [], []
    for i, rec in enumerate(recs):
        t = traces.get(rec.get("sample_id"))
        lps = (
            None
            if t is None
            else [
                (-float("inf") if v is None else v)
                for v in (t.get(key) or t.get("token_logprobs") or [])
            ]
        )
        cl = confidence_for_record(
            rec, i, None if t is None else t["generated_token_text"], lps, copts
        )
        conf_lines.append(cl)
        scored.append(scored_record(rec, cl))
    run_dir = eval_dir.parent
    A.write_jsonl(run_dir / A.CONFIDENCE, conf_lines)
    A.write_jsonl(run_dir / A.SCORED, scored)
    A.write_json(RunDir(run_dir).postop_summary, postop_summary(conf_lines))
    opts = cfg.eval_options()
    if vocabulary is not None:
        opts = replace(opts, categories=vocabulary)
    task = task or get_task(cfg.task)
    docs = dataset_category_docs(cfg.data)
    result = task.score(scored, opts, dataset_categories(cfg), categories=docs)
    task.write_eval(result, eval_dir)
    return result


def scored_inputs(run_dir: Path) -> dict[str, str]:
    """sha256 of the records and traces a finished run was scored from: a re-run skips the run
    only while they are unchanged (an edited or damaged file is re-read and re-checked)."""
    out = {}
    for name in (A.GT_VS_PRED, A.TRACE):
        h = hashlib.sha256()
        with open(run_dir / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[name] = h.hexdigest()
    return out


def finalize(run_dir: Path, cfg: RunConfig) -> dict[str, Any]:
    """Score the run and record its timing; a run finished before is logged as a re-score."""
    recs, traces = _load_run(run_dir)
    t0 = time.perf_counter()
    head = A.read_json(run_dir / A.RUN_JSON)
    task = task_of(head.get("identity"))
    result = score_run_records(recs, traces, cfg, RunDir(run_dir).eval.root, task=task)
    summary = build_summary(head, recs, result, headline=task.headline_keys())
    _dialect_notes(summary, recs, traces, head["identity"]["prompt"]["name"])
    A.write_json(run_dir / A.SUMMARY, summary)
    prov = head.setdefault("provenance", {})
    rescored = bool(prov.get("finished_at"))
    prov["score_seconds"] = round(time.perf_counter() - t0, 3)
    prov.update(run_timing(prov))
    prov["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    prov["scored_inputs"] = scored_inputs(run_dir)
    A.write_json(run_dir / A.RUN_JSON, head)
    _after_run(run_dir, summary, "rescore" if rescored else "run")
    return summary


def _dialect_notes(
    summary: dict[str, Any], recs: list[dict], traces: dict[str, dict], preset: str
) -> None:
    """Think-span token lengths and the dialect-mismatch warning (summary and report)."""
    lengths = []
    for r in recs:
        if r.get("reasoning_text") is None:
            continue
        tokens = (traces.get(str(r.get("sample_id"))) or {}).get("generated_token_text") or []
        lengths.append(reasoning_tokens(str(r.get("raw_text") or ""), [str(t) for t in tokens]))
    parse = summary.setdefault("parse", {})
    parse["reasoning_tokens"] = {
        "answers_with_reasoning": len(lengths),
        "mean": sum(lengths) / len(lengths) if lengths else 0.0,
        "max": max(lengths, default=0),
        "total": sum(lengths),
    }
    check = dialect_check(recs, preset)
    parse["dialect_check"] = check
    bad = prompt_check(parse.get("counts") or {}, preset)
    if bad is not None:  # only then: a clean run's summary.json keeps its bytes
        parse["prompt_check"] = bad
    for c in (check, bad):
        if c is not None:
            diag = summary.get("diagnostics")
            if not isinstance(diag, dict):
                diag = summary["diagnostics"] = {}
            diag["warnings"] = [*(diag.get("warnings") or []), c["warning"]]


def _after_run(run_dir: Path, summary: dict[str, Any], kind: str = "run") -> None:
    """The HTML report and the benchmark-log line: useful, but never worth failing a run for."""
    import logging

    log = logging.getLogger("coordbench")
    try:
        write_run_report(run_dir)
    except Exception as e:  # noqa: BLE001 - the scored artifacts are already safe on disk
        log.warning("%s not written: %s: %s", run_dir / REPORT, type(e).__name__, e)
    append_run_entry(run_dir, summary, kind=kind)
