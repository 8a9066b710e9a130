"""`coordbench data ...`: build a COCO preset, validate a dataset JSONL (thin click shells)."""

from __future__ import annotations

from pathlib import Path

import click

from coordbench.cli.common import CONTEXT, friendly_errors
from coordbench.config.run import user_data_root
from coordbench.errors import DataError


def default_out_dir(factor: int, budget: int, max_objects: int | None) -> Path:
    """`public_data/coco/rescale_{factor}_{budget}[_max{N}]`, upstream's preset naming
    [UP-PRESET-NAMING].

    Under the checkout's top-level `public_data/`, or the working directory's when installed
    (where `coordbench run --preset N` looks for it too).
    """
    name = f"rescale_{factor}_{budget}" + (f"_max{max_objects}" if max_objects is not None else "")
    return user_data_root() / "public_data" / "coco" / name


@click.group("data", context_settings=CONTEXT)
def data_group() -> None:
    """Build and check dataset presets (JSONL + resized images).

    \b
    Examples:
      coordbench data coco --coco-root /data/coco --preset 768                # full val2017
      coordbench data coco --coco-root /data/coco --preset 1024 --max-objects 60 --limit 200
      coordbench data jsonl public_data/coco/rescale_32_768/val.coord.jsonl
    """


@data_group.command("coco", context_settings=CONTEXT)
@click.option(
    "--coco-root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder with annotations/instances_<split>.json and <split>/*.jpg.",
)
@click.option("--split", default="val2017", show_default=True, help="COCO split folder name.")
@click.option(
    "--preset",
    default="768",
    show_default=True,
    help="Rescale preset (configs/rescale/*.toml): 768 -> 32*32*768 pixels.",
)
@click.option(
    "--max-objects",
    type=click.IntRange(min=0),
    default=None,
    help="Drop (never truncate) images with more objects, e.g. 60 as upstream's _max60.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="Keep the first N images by COCO id after all filters (200 = val200).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder [default: public_data/coco/rescale_32_<budget>[_max<N>]].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Threads resizing images.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Skip and count missing/corrupt images and bad annotations instead of failing.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@friendly_errors
def coco_cmd(
    coco_root: str,
    split: str,
    preset: str,
    max_objects: int | None,
    limit: int | None,
    out: str | None,
    workers: int,
    skip_bad: bool,
    no_progress: bool,
) -> None:
    """Build a preset from COCO 2017 instances: the upstream val.jsonl / .norm / .coord files.

    Drops crowd, zero-size and out-of-bounds boxes and images left empty, smart-resizes every
    image onto the preset's 32-pixel grid (LANCZOS, JPEG), and keeps COCO ids and the original
    size. Re-running reuses images already written; the folder is replaced only when complete.
    """
    from coordbench.config.presets import load_rescale_preset
    from coordbench.data.coco import convert_coco

    rp = load_rescale_preset(preset)
    out_dir = Path(out) if out else default_out_dir(rp.factor, rp.budget, max_objects)
    stats = convert_coco(
        coco_root,
        split=split,
        budget=rp.budget,
        factor=rp.factor,
        max_objects=max_objects,
        limit=limit,
        out_dir=out_dir,
        workers=workers,
        skip_bad=skip_bad,
        progress=not no_progress,
        algorithm=rp.algorithm,
        min_pixels=rp.min_pixels,
    )
    short = split.removesuffix("2017")
    click.echo(f"wrote {stats.images_written} images, {stats.objects_written} objects to {out_dir}")
    click.echo(
        f"  resized {stats.images_resized}, reused {stats.images_reused}; skipped images: "
        f"empty {stats.images_skipped_empty}, max-objects {stats.images_skipped_max_objects}, "
        f"limit {stats.images_skipped_limit}, bad {stats.images_skipped_bad}"
    )
    click.echo(
        f"  annotations {stats.anns_total}: kept {stats.anns_kept}, "
        f"crowd {stats.anns_skipped_crowd}, "
        f"zero-size {stats.anns_skipped_invalid_bbox}, outside {stats.anns_skipped_outside_image}, "
        f"no bbox {stats.anns_skipped_missing_bbox}, "
        f"unknown category {stats.anns_skipped_missing_category}"
    )
    click.echo(
        f"run it: coordbench run --ckpt CKPT --preset {preset} "
        f"--data {out_dir / f'{short}.coord.jsonl'}"
    )


@data_group.command("refcoco", context_settings=CONTEXT)
@click.option(
    "--coco-root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="COCO folder holding train2014/ (the images of RefCOCO, RefCOCO+ and RefCOCOg).",
)
@click.option(
    "--annotations",
    type=click.Path(exists=True, dir_okay=False),
    help="MDETR grounding JSON, e.g. final_refcoco_val.json (one image entry per expression).",
)
@click.option(
    "--refs",
    type=click.Path(exists=True, dir_okay=False),
    help="refer layout: refs(unc).p (RefCOCO, RefCOCO+) or refs(umd).p (RefCOCOg).",
)
@click.option(
    "--instances",
    type=click.Path(exists=True, dir_okay=False),
    help="refer layout: the data set's instances.json (boxes and image sizes).",
)
@click.option(
    "--dataset",
    type=click.Choice(["refcoco", "refcoco+", "refcocog"]),
    default="refcoco",
    show_default=True,
    help="Which data set the refs pickle holds (split names differ).",
)
@click.option(
    "--split",
    default="val",
    show_default=True,
    help="val, testA, testB (RefCOCO, RefCOCO+), val, test (RefCOCOg), or train.",
)
@click.option("--image-split", default="train2014", show_default=True, help="Folder of the images.")
@click.option("--preset", default="768", show_default=True, help="Rescale preset.")
@click.option("--limit", type=int, help="Only the first N expressions.")
@click.option("--out", type=click.Path(file_okay=False), help="Output preset folder.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@friendly_errors
def refcoco_cmd(
    coco_root: str,
    annotations: str | None,
    refs: str | None,
    instances: str | None,
    dataset: str,
    split: str,
    image_split: str,
    preset: str,
    limit: int | None,
    out: str | None,
    no_progress: bool,
) -> None:
    """Build a RefCOCO/+/g grounding preset: one record per expression, images resized.

    \b
    Examples:
      coordbench data refcoco --coco-root /data/coco --annotations final_refcoco_val.json
      coordbench data refcoco --coco-root /data/coco --refs 'refcoco/refs(unc).p' \\
          --instances refcoco/instances.json --split testA --preset 1024
    """
    from coordbench.config.presets import load_rescale_preset
    from coordbench.data.refcoco import convert_refcoco

    rp = load_rescale_preset(preset)
    name = f"{dataset}_{split}_rescale_{rp.factor}_{rp.budget}"
    out_dir = Path(out) if out else user_data_root() / "public_data" / "refcoco" / name
    stats = convert_refcoco(
        coco_root,
        out_dir=out_dir,
        annotations=annotations,
        refs=refs,
        instances=instances,
        dataset=dataset,
        split=split,
        image_split=image_split,
        budget=rp.budget,
        factor=rp.factor,
        limit=limit,
        progress=not no_progress,
        algorithm=rp.algorithm,
        min_pixels=rp.min_pixels,
    )
    click.echo(f"wrote {stats.images_written} expressions to {out_dir}")
    click.echo(
        f"run it: coordbench run --task refcoco --ckpt CKPT --preset {preset} "
        f"--data {out_dir / f'{split}.jsonl'}"
    )


@data_group.command("odinw", context_settings=CONTEXT)
@click.option(
    "--odinw-root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="GLIP/mmdetection odinw folder (AerialMaritimeDrone/, Aquarium/, ... as downloaded).",
)
@click.option(
    "--members",
    help="Comma-separated members to build (default: all 13; names as in docs/odinw.md).",
)
@click.option("--preset", default="768", show_default=True, help="Rescale preset.")
@click.option("--limit", type=int, help="Only the first N images of each member.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for the member presets (default public_data/odinw/rescale_F_B): run's "
    "--odinw-root.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@friendly_errors
def odinw_cmd(
    odinw_root: str,
    members: str | None,
    preset: str,
    limit: int | None,
    out: str | None,
    no_progress: bool,
) -> None:
    """Build the ODinW-13 member presets: one COCO-format preset folder per data set.

    \b
    Examples:
      coordbench data odinw --odinw-root /data/odinw --preset 768
      coordbench data odinw --odinw-root /data/odinw --members Aquarium,pothole --limit 50
    """
    from coordbench.config.presets import load_rescale_preset
    from coordbench.data.odinw import convert_odinw

    rp = load_rescale_preset(preset)
    name = f"rescale_{rp.factor}_{rp.budget}"
    out_dir = Path(out) if out else user_data_root() / "public_data" / "odinw" / name
    picked = [m.strip() for m in members.split(",") if m.strip()] if members else None
    stats = convert_odinw(
        odinw_root,
        out_root=out_dir,
        members=picked,
        budget=rp.budget,
        factor=rp.factor,
        limit=limit,
        progress=not no_progress,
        algorithm=rp.algorithm,
        min_pixels=rp.min_pixels,
    )
    for member, st in stats.items():
        click.echo(f"{member}: {st.images_written} images, {st.objects_written} boxes")
    click.echo(f"wrote {len(stats)} member presets to {out_dir}")
    click.echo(
        f"run it: coordbench run --task odinw13 --ckpt CKPT --preset {preset} "
        f"--odinw-root {out_dir}"
    )


@data_group.command("jsonl", context_settings=CONTEXT)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--decode", is_flag=True, help="Decode every image (slow) instead of reading headers."
)
@click.option("--no-images", is_flag=True, help="Skip the image checks.")
@click.option(
    "--preset", default=None, help="Also check sizes against a rescale preset's grid and budget."
)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False),
    help="Allow absolute image paths under this folder (besides the JSONL's own folder).",
)
@friendly_errors
def jsonl_cmd(
    path: str, decode: bool, no_images: bool, preset: str | None, image_root: str | None
) -> None:
    """Validate a dataset JSONL: records, coordinates, image files and their sizes.

    \b
    Examples:
      coordbench data jsonl public_data/photos/val.jsonl
      coordbench data jsonl out/val.coord.jsonl --preset 768 --decode
    """
    from coordbench.data.validate import validate_jsonl

    factor = max_pixels = None
    if preset:
        from coordbench.config.presets import load_rescale_preset

        rp = load_rescale_preset(preset)
        factor, max_pixels = rp.factor, rp.max_pixels
    report = validate_jsonl(
        path,
        check_images=not no_images,
        decode=decode,
        factor=factor,
        max_pixels=max_pixels,
        image_root=image_root,
    )
    click.echo(report.summary())
    if not report.ok:
        raise DataError(f"{path}: {report.n_errors} problem(s), see above")
    if report.off_grid or report.over_budget:
        raise DataError(f"{path}: images are not {preset} preset images (off grid or over budget)")
