"""`coordbench eval`.

Command modules import click and light config at module level only; the library is imported
inside the command, so `coordbench --help` does not pay for numpy, PIL or the scorers.
"""

from __future__ import annotations

from pathlib import Path

import click

from coordbench.cli.common import CONTEXT, friendly_errors
from coordbench.rundir import layout as L
from coordbench.rundir.layout import EVAL_ORIGINAL_DIR, RUN_JSON

# what each eval form writes under --out: (sub folder, names); matches*.jsonl go with EVAL_FILES
EVAL_FILES = (L.METRICS, L.PER_CLASS, L.PER_IMAGE, L.COCO_GT, L.COCO_PREDS, L.SEMANTIC_REPORT)
PAIR_FILES = (("", (L.METRICS, L.PER_CLASS)),)
FILE_FILES = (("", EVAL_FILES),)
RUN_FILES = (
    ("", (L.SCORED, L.CONFIDENCE, L.POSTOP_SUMMARY, L.SUMMARY)),
    (L.EVAL_DIR, EVAL_FILES),
    (EVAL_ORIGINAL_DIR, EVAL_FILES),
)


@click.command("eval", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True), required=False)
@click.option("--out", type=click.Path(), help="Eval dir (default: PATH/eval or next to the file).")
@click.option(
    "--scorer",
    type=click.Choice(["faster", "pycocotools"]),
    default=None,
    help="COCO scorer (default: the run's): faster-coco-eval or pycocotools.",
)
@click.option(
    "--semantic-threshold",
    type=float,
    default=None,
    help="Cosine similarity to map a free-text class onto a GT class (default: the run's).",
)
@click.option(
    "--categories",
    type=click.Choice(["dataset", "subset"]),
    default=None,
    help="Vocabulary: the dataset's full list (default) or upstream's GT-of-the-subset rule.",
)
@click.option(
    "--tolerant", is_flag=True, help="Skip malformed JSONL lines (counted) instead of failing."
)
@click.option(
    "--no-matches",
    is_flag=True,
    help="Write no matches*.jsonl (one row per image and F1 threshold listing every match, "
    "about 20 bytes per detection each): the F1 numbers stay in metrics.json.",
)
@click.option(
    "--original-scale",
    "annotations",
    type=click.Path(exists=True, dir_okay=False),
    help="Also score at original COCO scale against this instances json (official areas, crowds).",
)
@click.option(
    "--coco-gt",
    type=click.Path(exists=True, dir_okay=False),
    help="COCO instances json: score --coco-dt against it with pycocotools semantics.",
)
@click.option(
    "--coco-dt", type=click.Path(exists=True, dir_okay=False), help="COCO bbox results json."
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=0,
    help="Bootstrap CI of AP with N >= 40 resamples (--coco-gt/--coco-dt).",
)
@click.option(
    "--lvis-gt",
    type=click.Path(exists=True, dir_okay=False),
    help="LVIS annotations (lvis_v1_val.json): score --lvis-dt by lvis-api's federated rules.",
)
@click.option(
    "--lvis-dt", type=click.Path(exists=True, dir_okay=False), help="LVIS bbox results json."
)
@click.option(
    "--lvis-max-dets",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="With --lvis-gt: detections kept per image, by score (lvis-api's max_dets).",
)
@click.option(
    "--task",
    default=None,
    help="With --coco-gt/--coco-dt: `refcoco` scores grounding (MDETR-style GT, Acc@0.5).",
)
@friendly_errors
def eval_cmd(
    path: str | None,
    out: str | None,
    scorer: str | None,
    semantic_threshold: float | None,
    categories: str | None,
    tolerant: bool,
    no_matches: bool,
    annotations: str | None,
    coco_gt: str | None,
    coco_dt: str | None,
    bootstrap: int,
    lvis_gt: str | None,
    lvis_dt: str | None,
    lvis_max_dets: int,
    task: str | None,
) -> None:
    """Re-parse and re-score a run dir, or score an upstream gt_vs_pred_scored.jsonl.

    \b
    What the eval dir costs on disk, per 1 M detections (100 per image, 7 GT per image):
      coco_preds.json   ~85 MB  every detection COCO scores (for pycocotools / compare)
      matches*.jsonl    ~20 MB  each, per F1 threshold (--no-matches: none)
      coco_gt.json      ~15 MB  the GT as COCO (~210 bytes per GT box)
      per_image.json     ~8 MB  ~800 bytes per image
      metrics.json, per_class.csv: a few kB
    Peak memory grows linearly with the detections, about 0.65 kB each above ~60 MB
    (717 MB at 1 M, 3.2 GB at 5 M), not with the size of the file.

    \b
    Examples:
      coordbench eval output/runs/NAME
      coordbench eval upstream/gt_vs_pred_scored.jsonl --out eval_dir --scorer pycocotools
      coordbench eval --coco-gt instances_val2017.json --coco-dt results.json --bootstrap 200
      coordbench eval --lvis-gt lvis_v1_val.json --lvis-dt results.json --out eval_lvis
    """
    from coordbench.metrics.gcpause import gc_paused

    if bootstrap and (not (coco_gt or coco_dt) or task not in (None, "detection")):
        raise click.UsageError("--bootstrap gives a CI of AP for --coco-gt/--coco-dt only")
    inputs = [Path(p) for p in (path, annotations, coco_gt, coco_dt, lvis_gt, lvis_dt) if p]
    if out is not None:
        check_eval_out(Path(out), inputs, _form(path, coco_gt, coco_dt, lvis_gt, lvis_dt))
    with gc_paused():  # reading + scoring build millions of acyclic objects [ARCH-EVAL-SPEED]
        if lvis_gt or lvis_dt:
            if not (lvis_gt and lvis_dt) or path or coco_gt or coco_dt:
                raise click.UsageError("--lvis-gt and --lvis-dt go together, alone")
            from coordbench.pipeline.lvis_pair import score_lvis_pair

            outdir = Path(out) if out else None
            click.echo(
                score_lvis_pair(Path(lvis_gt), Path(lvis_dt), out=outdir, max_dets=lvis_max_dets)
            )
            return
        if coco_gt or coco_dt:
            _score_pair(path, coco_gt, coco_dt, out, scorer, bootstrap, task)
            return
        if not path:
            raise click.UsageError("give PATH (a run dir or scored JSONL) or --coco-gt/--coco-dt")
        if Path(path).is_dir() and (Path(path) / RUN_JSON).exists():
            from coordbench.pipeline.rescore import eval_path
        else:  # a scored file: only the scorer is imported (start-up is part of the wait)
            from coordbench.pipeline.score_file import eval_file_path as eval_path

        text = eval_path(
            Path(path),
            out=out,
            scorer=scorer,
            semantic_threshold=semantic_threshold,
            tolerant=tolerant,
            categories=categories,
            matches=not no_matches,
        )
    click.echo(text)
    if annotations:
        from coordbench.pipeline.original_scale import eval_original_scale

        stats = eval_original_scale(
            Path(path),
            Path(annotations),
            scorer=scorer or "faster",
            out_dir=Path(out) / EVAL_ORIGINAL_DIR if out else None,
        )
        click.echo("original scale (official COCO areas, crowd regions ignored):")
        for k, v in stats.items():
            click.echo(f"  {k:<12} {v:.4f}")


def _score_pair(
    path: str | None,
    coco_gt: str | None,
    coco_dt: str | None,
    out: str | None,
    scorer: str | None,
    bootstrap: int,
    task: str | None = None,
) -> None:
    if not (coco_gt and coco_dt) or path:
        raise click.UsageError("--coco-gt and --coco-dt go together, without PATH")
    if task is not None:
        from coordbench.tasks import get_task

        pair = get_task(task).score_pair  # a task with its own pair format (grounding)
        if pair is not None:
            click.echo(pair(Path(coco_gt), Path(coco_dt), Path(out) if out else None))
            return
    from coordbench.pipeline.coco_pair import score_coco_pair

    click.echo(
        score_coco_pair(
            Path(coco_gt),
            Path(coco_dt),
            out=Path(out) if out else None,
            scorer=scorer or "faster",
            bootstrap=bootstrap,
        )
    )


def _form(path: str | None, *pairs: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What this eval form writes under --out."""
    if any(pairs):
        return PAIR_FILES
    if path and Path(path).is_dir() and (Path(path) / RUN_JSON).exists():
        return RUN_FILES
    return FILE_FILES


def _writes(folder: Path, name: str, names: tuple[str, ...]) -> bool:
    matches = name.startswith(L.MATCHES.split(".")[0]) and name.endswith(".jsonl")
    return name in names or (names is EVAL_FILES and matches)


def check_eval_out(
    out: Path, inputs: list[Path], writes: tuple[tuple[str, tuple[str, ...]], ...]
) -> None:
    """--out is a folder (new or existing, never a file such as /dev/null), none of the files
    eval writes there is one of its inputs, and a run dir's eval never lands in another run dir
    (its summary and scored records would then describe this run)."""
    import os

    from coordbench.errors import ArtifactError

    for p in (out, *out.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise ArtifactError(
                    f"--out {out}: {p} is not a folder; "
                    "eval writes a folder of files (metrics.json, per_class.csv, ...): give a "
                    "new or existing folder"
                )
            if not os.access(p, os.W_OK):
                raise ArtifactError(f"--out {out}: cannot write into {p} (permission denied)")
            break
    real = {os.path.realpath(out / sub): names for sub, names in writes}
    for src in inputs:
        names = real.get(os.path.realpath(src.parent))
        if src.is_file() and names is not None and _writes(out, src.name, names):
            raise ArtifactError(
                f"--out {out} would write over {src}, an input of this command: choose "
                "another folder"
            )
    run_dir = inputs[0] if writes is RUN_FILES else None
    if run_dir is not None and (out / RUN_JSON).exists():
        if os.path.realpath(out) != os.path.realpath(run_dir):
            raise ArtifactError(
                f"--out {out} is another run dir (it has its own {RUN_JSON}): this run's "
                "scored records and summary would replace its own; choose another folder"
            )
