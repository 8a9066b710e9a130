"""COCO 2017 instances -> a preset folder: `val.jsonl`, `val.norm.jsonl`, `val.coord.jsonl`, images.

One pass of upstream's three steps ([UP-COCO-CONVERT] convert, [UP-RESIZE] rescale, [UP-NORM1000]
coord):
ascending image id, annotations by (id, category_id), crowd / zero-size / out-of-bounds boxes
dropped and counted, images left without objects dropped, optional drop-only `max_objects`
filter, then `limit` = the first N survivors (val200 = `max_objects=60, limit=200`). Everything is
written to a temp folder that replaces `out_dir` only when complete; images already written at
the right size (in the temp folder or the previous preset) are reused, not re-encoded.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from coordbench.data.coords import objects_to_norm1000, objects_to_tokens, rescale_objects
from coordbench.data.resize import MIN_PIXELS, ensure_resized, smart_resize
from coordbench.errors import DataError
from coordbench.rundir.files import utf8

EPS = 1e-6  # upstream converter's tolerance for zero-size and out-of-bounds boxes [UP-COCO-CONVERT]
SCHEMA_VERSION = 1
MAX_BAD_ITEMS = 100  # skipped items listed by name in conversion_stats.json; the rest only counted


@dataclass
class ConversionStats:
    """Counts written to `conversion_stats.json` (upstream's keys plus ours)."""

    images_total: int = 0
    images_written: int = 0
    images_skipped_empty: int = 0
    images_skipped_max_objects: int = 0
    images_skipped_limit: int = 0
    images_skipped_bad: int = 0
    anns_total: int = 0
    anns_kept: int = 0
    anns_skipped_crowd: int = 0
    anns_skipped_missing_bbox: int = 0
    anns_skipped_invalid_bbox: int = 0
    anns_skipped_outside_image: int = 0
    anns_skipped_missing_category: int = 0
    objects_written: int = 0
    objects_dropped_invalid_bbox: int = 0
    images_resized: int = 0
    images_reused: int = 0
    out_dir: str = ""
    bad_items: list[str] = field(default_factory=list)  # what --skip-bad skipped, one line each


@dataclass(frozen=True)
class _Job:
    record: dict[str, Any]
    src: Path
    dst: Path
    previous: Path | None  # the same image in the preset being replaced
    size: tuple[int, int]


# --------------------------------------------------------------------------- instances -> raw


COCO_LISTS = ("images", "annotations", "categories")


def read_json_object(path: Path, need: tuple[str, ...] = (), what: str = "a JSON object") -> dict:
    """A JSON object file whose keys `need` hold lists; every failure a DataError naming it."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except orjson.JSONDecodeError as e:
        raise DataError(f"invalid JSON in {path}: {e}") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in need):
        lists = f" with {', '.join(need)} lists" if need else ""
        raise DataError(f"{path}: not {what}{lists}")
    return doc


def load_instances(coco_root: Path, split: str) -> dict[str, Any]:
    path = coco_root / "annotations" / f"instances_{split}.json"
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    try:
        coco = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise DataError(f"invalid JSON in {path}: {e}") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise DataError(f"{path}: not a COCO instances file (no `images` list)")
    return coco


def _bad(stats: ConversionStats, skip_bad: bool, msg: str) -> None:
    if not skip_bad:
        raise DataError(msg + " (pass --skip-bad to skip and count such items)")
    if len(stats.bad_items) < MAX_BAD_ITEMS:
        stats.bad_items.append(msg)


def keep_ann(
    ann: dict, wh: tuple[int, int], cats: dict[int, str], stats: ConversionStats, skip_bad: bool
) -> dict[str, Any] | None:
    """One annotation -> an object, or None when a [UP-COCO-CONVERT] rule drops it (counted)."""
    if int(ann.get("iscrowd", 0)) == 1:
        stats.anns_skipped_crowd += 1
        return None
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        stats.anns_skipped_missing_bbox += 1
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        stats.anns_skipped_invalid_bbox += 1
        return None
    x1, y1, x2, y2 = x, y, x + w, y + h
    if not (x2 - x1 > EPS and y2 - y1 > EPS):
        stats.anns_skipped_invalid_bbox += 1
        return None
    if x1 < -EPS or y1 < -EPS or x2 > wh[0] + EPS or y2 > wh[1] + EPS:
        stats.anns_skipped_outside_image += 1  # skipped, not clipped, as upstream
        return None
    cat = ann.get("category_id")
    name = cats.get(cat) if isinstance(cat, int) and not isinstance(cat, bool) else None
    if name is None:
        _bad(stats, skip_bad, f"annotation {ann.get('id')}: unknown category_id {cat!r}")
        stats.anns_skipped_missing_category += 1
        return None
    stats.anns_kept += 1
    return {
        "bbox_2d": [x1, y1, x2, y2],
        "desc": name,
        "category_id": cat,
        "category_name": name,
        "coco_ann_id": int(ann.get("id", 0)),
    }


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _image_entry(
    img: Any, stats: ConversionStats, skip_bad: bool
) -> tuple[int, str, int, int] | None:
    """(id, file_name, width, height) of a usable image entry; else an error,
    or None if skipping."""
    if isinstance(img, dict):
        iid, name, w, h = (img.get(k) for k in ("id", "file_name", "width", "height"))
        plain = (
            isinstance(name, str) and name not in ("", ".", "..") and not {"/", "\\"} & set(name)
        )
        if isinstance(iid, int) and plain and _positive_int(w) and _positive_int(h):
            return iid, name, w, h
    _bad(
        stats,
        skip_bad,
        f"image entry {img!r:.200}: needs an id, a plain file_name and a positive size",
    )
    stats.images_skipped_bad += 1
    return None


def category_names(coco: dict[str, Any]) -> dict[int, str]:
    """COCO category id -> name (the object's `desc`)."""
    cats = coco.get("categories")
    return {
        c["id"]: str(c["name"])
        for c in cats or []
        if isinstance(c, dict) and "id" in c and "name" in c
    }


def raw_records(
    coco: dict[str, Any],
    cats: dict[int, str],
    split: str,
    stats: ConversionStats,
    *,
    skip_bad: bool,
) -> list[dict]:
    """COCO instances -> upstream's raw pixel records (original size, float boxes), by image id."""
    anns_by_image: dict[int, list[dict]] = {}
    annotations = coco.get("annotations") or []
    stats.anns_total = len(annotations)
    for ann in annotations:
        if isinstance(ann, dict) and "image_id" in ann:
            anns_by_image.setdefault(ann["image_id"], []).append(ann)
    entries = [e for img in coco["images"] if (e := _image_entry(img, stats, skip_bad)) is not None]
    stats.images_total = len(coco["images"])
    short = split.removesuffix("2017")
    out = []
    for image_id, name, w, h in sorted(entries):
        anns = sorted(
            anns_by_image.get(image_id, []),
            key=lambda a: (int(a.get("id", 0)), int(a.get("category_id") or 0)),
        )
        objs = [o for a in anns if (o := keep_ann(a, (w, h), cats, stats, skip_bad)) is not None]
        if not objs:
            stats.images_skipped_empty += 1
            continue
        rel = f"images/{split}/{name}"
        out.append(
            {
                "images": [rel],
                "objects": objs,
                "width": w,
                "height": h,
                "image_id": image_id,
                "file_name": rel,
                "metadata": {"source": "coco2017", "split": short},
            }
        )
    return out


# --------------------------------------------------------------------------- images


def _materialize(job: _Job) -> tuple[str, str | None]:
    """(what happened, error or None); never raises for bad input so a pool reports in order."""
    wh = (job.record["width"], job.record["height"])
    try:
        return ensure_resized(job.src, job.dst, job.size, src_size=wh, previous=job.previous), None
    except DataError as e:
        return "bad", f"{e} (image_id {job.record['image_id']})"


def _run_jobs(jobs: list[_Job], workers: int, bar) -> Iterator[tuple[_Job, str, str | None]]:
    """Jobs in order with their outcome; a thread pool (PIL releases the GIL while coding)."""
    if workers <= 1:
        for job in jobs:
            yield job, *_materialize(job)
            bar.update(1)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coco-resize")
    try:
        for job, (status, err) in zip(jobs, pool.map(_materialize, jobs), strict=True):
            yield job, status, err
            bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- output


def _preset_rows(
    raw: dict, size: tuple[int, int], stats: ConversionStats
) -> tuple[dict, dict, dict]:
    """Raw record -> (pixel, norm1000, coord-token) records; key order as upstream,
    plus orig size."""
    w, h = raw["width"], raw["height"]
    pixel = {
        **raw,
        "objects": rescale_objects(raw["objects"], (w, h), size),
        "width": size[0],
        "height": size[1],
        "orig_width": w,
        "orig_height": h,
    }
    norm_objs, dropped = objects_to_norm1000(pixel["objects"], *size)
    stats.objects_dropped_invalid_bbox += dropped
    stats.objects_written += len(norm_objs)
    return (
        pixel,
        {**pixel, "objects": norm_objs},
        {**pixel, "objects": objects_to_tokens(norm_objs)},
    )


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    # upstream layout: Python default separators, ensure_ascii=False [UP-RECORD-SCHEMA]
    path.write_bytes(utf8("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)))


def _write_json(path: Path, obj: Any) -> None:
    path.write_bytes(utf8(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"))


def _is_preset_folder(out_dir: Path) -> bool:
    """A folder `data coco` wrote: its conversion_stats.json names a schema and the params. A
    `val.jsonl` alone is not enough: any user folder may hold one. [ARCH-SAFETY]"""
    try:
        stats = json.loads((out_dir / "conversion_stats.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(stats, dict) and "schema_version" in stats and "params" in stats


def check_out_dir(out_dir: Path, root: Path) -> None:
    """--out is replaced whole on success, so it must be empty, new, or a preset folder; and it
    must not hold (or be) the COCO root it reads from."""
    real_out, real_root = Path(os.path.realpath(out_dir)), Path(os.path.realpath(root))
    if real_root == real_out or real_root.is_relative_to(real_out):
        raise DataError(
            f"refusing to write the preset into {out_dir}: it holds the input --coco-root {root}"
        )
    if out_dir.exists() and not (
        out_dir.is_dir() and (not any(out_dir.iterdir()) or _is_preset_folder(out_dir))
    ):
        raise DataError(
            f"refusing to replace {out_dir}: it exists and is not a preset folder written by "
            "`coordbench data` (no conversion_stats.json); choose a new or empty --out"
        )


def _prune(images_dir: Path, keep: set[Path]) -> None:
    """Drop what a failed or different earlier run left in the temp folder (stale images, temps)."""
    for p in images_dir.rglob("*") if images_dir.is_dir() else ():
        if p.is_file() and p not in keep:
            p.unlink()


def _publish(tmp: Path, out_dir: Path) -> None:
    """Swap the finished temp folder in; the old preset disappears only after the swap."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class _Plan:
    root: Path
    split: str
    out_dir: Path
    tmp: Path
    factor: int
    max_pixels: int
    min_pixels: int
    algorithm: str
    workers: int
    skip_bad: bool

    def job(self, rec: dict) -> _Job:
        size = smart_resize(
            rec["width"],
            rec["height"],
            factor=self.factor,
            max_pixels=self.max_pixels,
            min_pixels=self.min_pixels,
            algorithm=self.algorithm,
        )
        rel = rec["images"][0]  # images/<source folder>/<file>: read from root/<source folder>/
        prev = self.out_dir / rel if self.out_dir.exists() else None
        src_dir = Path(rel).parts[1] if len(Path(rel).parts) > 2 else self.split
        return _Job(rec, self.root / src_dir / Path(rel).name, self.tmp / rel, prev, size)


def _build_rows(
    plan: _Plan, candidates: list[dict], limit: int | None, stats: ConversionStats, bar
) -> list[tuple[dict, dict, dict]]:
    """Resize the first `limit` candidates; with --skip-bad, bad images are replaced by the next."""
    todo = iter(candidates)
    rows: list[tuple[dict, dict, dict]] = []
    while limit is None or len(rows) < limit:
        batch = list(itertools.islice(todo, None if limit is None else limit - len(rows)))
        if not batch:
            break
        for job, status, err in _run_jobs([plan.job(r) for r in batch], plan.workers, bar):
            if err is not None:
                _bad(stats, plan.skip_bad, err)
                stats.images_skipped_bad += 1
                continue
            stats.images_resized += status == "resized"
            stats.images_reused += status == "reused"
            rows.append(_preset_rows(job.record, job.size, stats))
    stats.images_skipped_limit = sum(1 for _ in todo)
    return rows


def convert_coco(
    coco_root: str | Path,
    *,
    split: str = "val2017",
    budget: int = 768,
    factor: int = 32,
    max_objects: int | None = None,
    limit: int | None = None,
    out_dir: str | Path,
    workers: int = 2,
    skip_bad: bool = False,
    progress: bool = True,
    algorithm: str = "current",
    min_pixels: int = MIN_PIXELS,
) -> ConversionStats:
    """Build a preset folder from `coco_root/annotations/instances_{split}.json`
    + `coco_root/{split}/`."""
    if (limit is not None and limit < 0) or (max_objects is not None and max_objects < 0):
        raise DataError(f"--limit and --max-objects must be >= 0, got {limit} and {max_objects}")
    root, out_dir, short = Path(coco_root), Path(out_dir), split.removesuffix("2017")
    check_out_dir(out_dir, root)
    stats = ConversionStats(out_dir=str(out_dir))
    coco = load_instances(root, split)
    cats = category_names(coco)
    candidates = raw_records(coco, cats, split, stats, skip_bad=skip_bad)
    if max_objects is not None:  # drop-only, never truncate (upstream's _max60)
        kept = [r for r in candidates if len(r["objects"]) <= max_objects]
        stats.images_skipped_max_objects = len(candidates) - len(kept)
        candidates = kept
    params = {
        "coco_root": str(root),
        "split": split,
        "factor": factor,
        "budget": budget,
        "max_pixels": factor * factor * budget,
        "min_pixels": min_pixels,
        "algorithm": algorithm,
        "max_objects": max_objects,
        "limit": limit,
    }
    spec = PresetSpec(root, split, out_dir, short, factor, budget, min_pixels, algorithm)
    return build_preset(
        spec,
        candidates,
        cats,
        stats,
        params,
        limit=limit,
        workers=workers,
        skip_bad=skip_bad,
        progress=progress,
        label="coco",
    )


@dataclass(frozen=True)
class PresetSpec:
    """Where a preset's images come from and go, and the rescale preset they are resized to."""

    root: Path  # images are read from root / split / file name
    split: str
    out_dir: Path
    short: str  # the JSONL stem: val -> val.jsonl, val.norm.jsonl, val.coord.jsonl
    factor: int
    budget: int
    min_pixels: int
    algorithm: str


def build_preset(
    spec: PresetSpec,
    candidates: list[dict],
    cats: dict[int, str],
    stats: ConversionStats,
    params: dict[str, Any],
    *,
    limit: int | None,
    workers: int,
    skip_bad: bool,
    progress: bool,
    label: str,
    categories_doc: list[dict[str, Any]] | None = None,
) -> ConversionStats:
    """Raw pixel records (original size) -> a published preset folder: the first `limit`
    records' images resized, the three JSONLs, categories.json and conversion_stats.json,
    written to a temp folder that replaces `out_dir` only when complete. Shared by the COCO,
    RefCOCO and ODinW builders."""
    from tqdm.auto import tqdm

    out_dir, split, short, root = spec.out_dir, spec.split, spec.short, spec.root
    plan = _Plan(
        root,
        split,
        out_dir,
        out_dir.with_name(f".{out_dir.name}.partial"),
        spec.factor,
        spec.factor * spec.factor * spec.budget,
        spec.min_pixels,
        spec.algorithm,
        workers,
        skip_bad,
    )
    plan.tmp.mkdir(parents=True, exist_ok=True)
    total = len(candidates) if limit is None else min(limit, len(candidates))
    with tqdm(
        total=total, disable=not progress, unit="img", desc=f"{label} {split} -> {out_dir.name}"
    ) as bar:
        try:
            rows = _build_rows(plan, candidates, limit, stats, bar)
        except DataError as e:  # the work done so far is kept: the next try reuses it
            raise DataError(
                f"{e}; images resized so far are kept in {plan.tmp} for the next try"
            ) from None
    stats.images_written = len(rows)
    _prune(plan.tmp / "images", {plan.tmp / r[0]["images"][0] for r in rows})
    if not rows:
        raise DataError(
            f"no images left to write from {root} (split {split}); check the filters and --limit"
        )
    for i, suffix in enumerate(("jsonl", "norm.jsonl", "coord.jsonl")):
        _write_jsonl(plan.tmp / f"{short}.{suffix}", [r[i] for r in rows])
    if categories_doc is None:
        categories_doc = [{"id": i, "name": n} for i, n in sorted(cats.items())]
    _write_json(plan.tmp / "categories.json", categories_doc)
    _write_json(
        plan.tmp / "conversion_stats.json",
        {"schema_version": SCHEMA_VERSION, **asdict(stats), "params": params},
    )
    _publish(plan.tmp, out_dir)
    return stats
