"""`coordbench export coco-results`; `cli.py` calls `register(main)` at import.

Kept light: click only at module level; the export code is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from coordbench.cli.common import CONTEXT, friendly_errors


@click.group("export", context_settings=CONTEXT)
def export_group() -> None:
    """Export a run's predictions in interchange formats."""


@export_group.command("coco-results", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Results file (default: RUN_DIR/coco_results.json).",
)
@click.option(
    "--annotations",
    type=click.Path(exists=True, dir_okay=False),
    help="COCO json (instances_val2017.json, image_info_test-dev2017.json) whose categories "
    "give the ids and whose images must cover the run (default: the dataset's categories.json).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    help="The run's dataset JSONL, if it moved since the run (default: run.json config.data).",
)
@friendly_errors
def coco_results_cmd(
    run_dir: str, out: str | None, annotations: str | None, data: str | None
) -> None:
    """Write a COCO results json at original image scale with official category ids.

    Boxes are scaled by W_orig/W_preset and clamped to the original image (upstream's test-dev
    exporter); descs map to ids exactly, else by the run's semantic mapper, else are dropped.
    To score at original scale, against the original COCO annotations:
    `coordbench eval RUN_DIR --original-scale instances_val2017.json`.

    \b
    Examples:
      coordbench export coco-results output/runs/NAME
      coordbench export coco-results output/runs/NAME --annotations image_info_test-dev2017.json \\
          --out detections_test-dev2017_mine_results.json
    """
    from coordbench.export.coco_results import (
        build_export,
        check_categories,
        load_annotations,
        restrict_annotations,
        write_results,
    )
    from coordbench.rundir.guard import refuse_input_as_output, refuse_inside_run_dir

    run = Path(run_dir)
    dest = Path(out) if out else run / "coco_results.json"
    refuse_inside_run_dir(dest, run)
    refuse_input_as_output(dest, [Path(p) for p in (annotations, data) if p])
    cats = None
    coco = None
    if annotations:
        coco = load_annotations(Path(annotations), need_annotations=False)
        cats = check_categories(coco["categories"], annotations)
    exp = build_export(run, categories=cats, data=Path(data) if data else None)
    if coco is not None:  # every run image must be in the file, at the same original size
        restrict_annotations(coco, exp, Path(annotations))
    write_results(dest, exp.results)
    c = exp.counters
    click.echo(
        f"wrote {len(exp.results)} detections for {len(exp.image_ids)} images to {dest} "
        f"({c['semantic_mapped']} semantic-mapped, {c['unknown_dropped']} dropped: unmapped desc, "
        f"{c['invalid_geometry'] + c['invalid_coord'] + c['degenerate']} dropped: invalid box)"
    )
