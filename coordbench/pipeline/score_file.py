"""`coordbench eval FILE`: score a scored-records file (ours or upstream's) [ARCH-EVAL-SPEED].

Kept apart from `rescore` (run dirs: re-parsing, traces, summaries, reports) so that scoring a
file imports only the scorer: start-up is part of what the user waits for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordbench.errors import ArtifactError, DataError
from coordbench.metrics.eval_files import drop_matches
from coordbench.metrics.ingest import dropped_size_note, records_without_size
from coordbench.metrics.scored_read import read_scored
from coordbench.metrics.scoring import EvalOptions
from coordbench.metrics.summary import metric_lines
from coordbench.rundir import files as A
from coordbench.rundir import layout as L
from coordbench.tasks import get_task

EXPECTED_INPUT = (
    "coordbench eval expects a run dir (with run.json) or a gt_vs_pred_scored.jsonl: JSON lines "
    "with `gt`, `pred` and `pred_score_source`"
)


def _check_scored_file(path: Path, recs: list[dict]) -> None:
    """A file none of whose records is scored is the wrong kind of file: say what was expected
    instead of blaming its first record."""
    if any("pred_score_source" in r for r in recs):
        return  # scored records; a single bad one is named by the scorer
    if (path.parent / A.RUN_JSON).exists() and path.name == A.GT_VS_PRED:
        hint = f"; {path.name} is a run's unscored output: pass its run dir {path.parent}"
    else:
        hint = ""
    what = f"none of its {len(recs)} records carries `pred_score_source`" if recs else "no records"
    raise DataError(f"{path} is not a scored-records file ({what}): {EXPECTED_INPUT}{hint}")


def size_warnings(recs: list[dict], where: str) -> list[str]:
    """The records the scorer would drop for want of a width/height, as a warning; none of them
    usable is an error (mAP 0 from 0 evaluable images is not a result)."""
    missing = records_without_size(recs)
    if recs and len(missing) == len(recs):
        raise DataError(
            f"{where}: none of its {len(recs)} records has a usable width/height (positive "
            f"integers), so no image can be evaluated ({dropped_size_note(recs, missing, where)})"
        )
    return [dropped_size_note(recs, missing, where)] if missing else []


def add_warnings(metrics_path: Path, warnings: list[str]) -> None:
    """Record `warnings` in a written metrics.json (valid input has none: the file is then
    left as the scorer wrote it)."""
    if warnings:
        doc = A.read_json(metrics_path)
        A.write_json(metrics_path, {**doc, "warnings": warnings})


def eval_scored_file(
    path: Path,
    out: Path | None,
    overrides: dict[str, Any],
    tolerant: bool,
    matches: bool = True,
) -> str:
    try:
        recs, skipped = read_scored(path, tolerant=tolerant)
    except DataError as e:
        raise DataError(f"{e} ({EXPECTED_INPUT})") from None
    _check_scored_file(path, recs)
    warnings = size_warnings(recs, str(path))
    opts = EvalOptions(**{k: v for k, v in overrides.items() if v is not None})
    task = get_task(None)  # a scored-records file is detection's upstream format
    no_size = [
        i
        for i, r in enumerate(recs, 1)
        if not all(isinstance(r.get(k), int) and r.get(k) > 0 for k in ("width", "height"))
    ]
    if recs and len(no_size) == len(recs):
        raise DataError(
            f"{path}: no record has a positive integer width and height: nothing can be scored "
            "(boxes are checked against the image size)"
        )
    result = task.score(recs, opts, None, invalid_json=skipped)
    eval_dir = out or path.parent / L.EVAL_DIR
    if not matches:  # --no-matches: the F1 numbers stay, the per-match rows are not written
        result.matches = {}
        drop_matches(eval_dir)
    task.write_eval(result, eval_dir)
    add_warnings(eval_dir / L.METRICS, warnings)
    n_cats = len(result.coco_gt["categories"])
    head = f"scored {len(recs)} records from {path} -> {eval_dir}" + (
        f" ({skipped} malformed lines skipped)" if skipped else ""
    )
    notes = [
        f"  categories: {opts.categories} ({n_cats} classes)",
        *(
            [
                f"  warning: {len(no_size)} of {len(recs)} records have no width/height and were "
                f"not scored (counters.missing_size), lines {no_size[:10]}"
            ]
            if no_size
            else []
        ),
        "  scores are ranking scores (from token log-probs for coordbench runs), not probabilities",
    ]
    # the metric table first, in the same names and order as `eval RUN_DIR`, then the notes
    lines = metric_lines(result.metrics, task.headline_keys(), task.count_keys())
    return "\n".join([*(f"warning: {w}" for w in warnings), head, "", *lines, "", *notes])


def eval_overrides(
    scorer: str | None, semantic_threshold: float | None, categories: str | None
) -> dict[str, Any]:
    """The evaluation options `coordbench eval` was given (None: keep the run's or the default)."""
    overrides: dict[str, Any] = {"scorer": scorer, "semantic_threshold": semantic_threshold}
    if categories is not None:
        overrides["categories"] = categories
    return overrides


def eval_file_path(
    path: Path,
    *,
    out: str | None,
    scorer: str | None,
    semantic_threshold: float | None,
    tolerant: bool = False,
    categories: str | None = None,
    matches: bool = True,
) -> str:
    """A scored-records file, or a folder without run.json that holds one; `matches=False`
    writes no matches*.jsonl (`eval --no-matches`)."""
    overrides = eval_overrides(scorer, semantic_threshold, categories)
    if path.is_dir():
        scored = path / A.SCORED
        if not scored.exists():
            raise ArtifactError(f"{path} is not a run dir (no {A.RUN_JSON}) and has no {A.SCORED}")
        path = scored
    return eval_scored_file(path, Path(out) if out else None, overrides, tolerant, matches)
