"""Load a preset JSONL ([ARCH-DATA-CONTRACT], [UP-RECORD-SCHEMA]) into `Sample`s with pixel-space GT
boxes.

The coordinate frame is a property of the file, never guessed from values [UP-COORD-FRAME]:
coord tokens -> norm1000; a `*.norm.jsonl` name -> norm1000; anything else -> pixel. Norm1000
GT goes through the evaluator's round trip (`k/999*(W-1)`, round, clamp), so a run's GT is
exactly what upstream scores against [UP-NORM1000]. Images are checked for existence here and
decoded only by `open_image`, one at a time, when a batch needs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from coordbench.data.images import exif_note, open_rgb
from coordbench.errors import DataError
from coordbench.geometry import (
    COORD_MAX,
    box_norm1000_to_px,
    box_px_round_clamp,
    is_coord_token,
    parse_coord_token,
)
from coordbench.rundir.jsonl import iter_lines
from coordbench.rundir.layout import CATEGORIES_JSON
from coordbench.types import Box, Sample

log = logging.getLogger("coordbench")

# Upstream validator: legacy/unsupported geometry keys are errors, not ignored [UP-RECORD-SCHEMA].
REJECTED_GEOMETRY_KEYS = ("bbox", "polygon", "line", "line_points", "poly", "points")
KNOWN_RECORD_KEYS = frozenset(
    {
        "images",
        "width",
        "height",
        "objects",
        "image_id",
        "file_name",
        "metadata",
        "orig_width",
        "orig_height",
        "summary",
    }
)
KNOWN_OBJECT_KEYS = frozenset({"bbox_2d", "desc", "category_id", "category_name", "coco_ann_id"})
# kept on the Sample for the record; the last ones are task inputs (grounding: the expression and
# its original-pixel box; LVIS: the federated lists) that the task copies into its records
EXTRA_KEYS = (
    "file_name",
    "metadata",
    "orig_width",
    "orig_height",
    "query",
    "split",
    "ref_id",
    "source_image_id",
    "gt_orig_bbox",
    "neg_category_ids",
    "not_exhaustive_category_ids",
)
FRAMES = ("pixel", "norm1000", "coord_tokens")


# --------------------------------------------------------------------------- reading lines


_UTF16_32 = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _read_data_file(path: Path) -> bytes:
    """The bytes of a data file; a missing or unreadable file is a DataError, and so is a
    UTF-16/32 file (JSONL is UTF-8: its lines would read as garbage), named with the fix."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read data file {path}: {e}") from None
    head = data[:4]
    enc = next((name for bom, name in _UTF16_32 if head.startswith(bom)), None)
    if enc is None and len(data) >= 4 and data[1:4:2] == b"\x00\x00" and data[0:1] == b"{":
        enc = "UTF-16"  # little-endian without a byte-order mark
    if enc is not None:
        raise DataError(
            f"{path} is {enc}-encoded; JSONL must be UTF-8: convert it, e.g. "
            f"`iconv -f {enc} -t UTF-8 {path.name} > {path.stem}.utf8.jsonl`"
        )
    return data


def read_dataset_lines(
    path: str | Path, *, limit: int | None = None, errors: list[str] | None = None
) -> list[tuple[int, bytes, dict]]:
    """(line number, raw line, record) for the first `limit` non-blank lines.

    Invalid JSON is a DataError naming the line (or, when `errors` is given, a message appended
    to it), except a torn *last* line of a file that does not end with a newline (an
    interrupted writer), which is dropped with a warning.
    """
    path = Path(path)
    if limit is not None and limit < 0:
        raise DataError(f"--limit must be >= 0, got {limit}")
    data = _read_data_file(path)
    out: list[tuple[int, bytes, dict]] = []
    for ln in iter_lines(data):
        if limit is not None and len(out) >= limit:
            break
        if ln.blank:
            continue
        if ln.row is not None:
            out.append((ln.number, ln.raw, ln.row))
            continue
        if ln.non_object is not None:
            msg = f"{path} line {ln.number}: a record must be a JSON object, got {ln.non_object}"
        elif ln.torn:
            log.warning(
                "%s: dropping torn last line %d (no trailing newline): %s",
                path,
                ln.number,
                ln.error,
            )
            break
        else:
            msg = f"invalid JSON in {path} line {ln.number}: {ln.error}"
        if errors is None:
            raise DataError(msg)
        errors.append(msg)
    return out


def _first_geometry_value(records: list[dict]) -> Any:
    for rec in records:
        objects = rec.get("objects")
        for obj in objects if isinstance(objects, list) else ():
            vals = obj.get("bbox_2d") if isinstance(obj, dict) else None
            if isinstance(vals, list) and vals:
                return vals[0]
    return None


def detect_frame(path: str | Path, records: list[dict]) -> str:
    """The file's coordinate frame: tokens or `*.coord.jsonl` -> coord_tokens, `*.norm.jsonl` ->
    norm1000, else pixel. Values then have to agree with it (checked per value)."""
    name = Path(path).name
    if is_coord_token(_first_geometry_value(records)) or name.endswith(".coord.jsonl"):
        return "coord_tokens"
    return "norm1000" if name.endswith(".norm.jsonl") else "pixel"


# --------------------------------------------------------------------------- one record


class _Where:
    """Names the culprit in every message: file, line, and sample when known."""

    def __init__(self, path: Path, line: int, notes: list[str] | None = None):
        self.path, self.line, self.sample = path, line, None
        self.notes = notes  # warnings (boxes clamped into the image), when the caller wants them

    def error(self, msg: str) -> DataError:
        who = f", sample {self.sample}" if self.sample is not None else ""
        return DataError(f"{msg} ({self.path} line {self.line}{who})")


def _positive_int(rec: dict, key: str, where: _Where) -> int:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise where.error(f"`{key}` must be a positive integer, got {v!r}")
    return v


def _image_rel(rec: dict, where: _Where, image_root: str | Path | None = None) -> str:
    images = rec.get("images")
    if (
        not isinstance(images, list)
        or len(images) != 1
        or not isinstance(images[0], str)
        or not images[0].strip()
    ):
        raise where.error(f"`images` must be a list of exactly one path string, got {images!r}")
    rel = images[0]
    if "://" in rel or rel.startswith(("data:", "s3:", "gs:")):
        raise where.error(
            f"image {rel!r} is a URL: coordbench reads local files only (no network at run "
            "time); download the images and write their paths relative to the JSONL"
        )
    problem = unsafe_image_path(rel, allowed_roots(where.path, image_root))
    if problem:
        raise where.error(f"{problem}, got {rel!r}")
    return rel


def allowed_roots(jsonl_path: str | Path, image_root: str | Path | None) -> tuple[Path, ...]:
    """Folders an absolute image path may point into: the JSONL's folder and `--image-root`."""
    roots = [Path(os.path.abspath(Path(jsonl_path).parent))]
    if image_root:
        roots.append(Path(os.path.abspath(image_root)))
    return tuple(roots)


def _under(path: str, roots: tuple[Path, ...]) -> bool:
    """Lexically (like the `..` rule for relative paths): the normalised path is inside a root."""
    norm = Path(os.path.normpath(path))
    return any(norm == r or r in norm.parents for r in roots)


def unsafe_image_path(rel: str, roots: tuple[Path, ...] = ()) -> str | None:
    """Why a record's image path may not be followed: `..` out of the data folder, or an
    absolute path outside every allowed root (the JSONL's folder, `--image-root`)."""
    absolute = (
        PurePosixPath(rel).is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or rel.startswith("\\")
    )
    if absolute:
        if roots and PurePosixPath(rel).is_absolute() and _under(rel, roots):
            return None
        where = " or ".join(str(r) for r in roots) or "the JSONL's folder"
        return (
            f"absolute image path outside {where}: pass --image-root DIR to allow absolute "
            "paths under DIR, or write paths relative to the JSONL's folder"
        )
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        return "image path must not leave the JSONL's folder with '..'"
    return None


def symlink_escape(root: Path, rel: str, roots: tuple[Path, ...] = ()) -> str | None:
    """Why `root / rel` may not be followed: a symlink on the way resolves outside `root` (or
    outside every allowed root: the JSONL's folder and `--image-root`).

    The same rule as for absolute paths and `..`, applied after resolving links, so a link
    planted in the data folder cannot pull an arbitrary file into a run or the report."""
    try:
        target = (root / rel).resolve()
        inside = any(target.is_relative_to(r.resolve()) for r in (roots or (root,)))
    except (OSError, RuntimeError):  # a link loop
        return f"image path {rel!r} cannot be resolved (a symlink loop?)"
    if inside:
        return None
    where = "the JSONL's folder" if len(roots) < 2 else " or ".join(str(r) for r in roots)
    return (
        f"image path {rel!r} is a symlink that leaves {where} (to {target}); "
        "copy or hard-link the image into the folder instead"
    )


def _number(v: Any, frame: str, where: _Where, i: int) -> float:
    if frame == "coord_tokens":
        k = parse_coord_token(v)
        if k is None:
            raise where.error(
                f"object {i}: expected coord tokens <|coord_0|>..<|coord_999|> but got {v!r}"
            )
        return float(k)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        hint = " (coord tokens belong in a .coord.jsonl file)" if is_coord_token(v) else ""
        raise where.error(f"object {i}: expected a number in the {frame} frame but got {v!r}{hint}")
    if frame == "norm1000" and not 0 <= v <= COORD_MAX:
        raise where.error(f"object {i}: norm1000 value {v!r} outside [0, {COORD_MAX}]")
    return float(v)


def _box(obj: Any, i: int, frame: str, wh: tuple[int, int], where: _Where) -> Box:
    if not isinstance(obj, dict):
        raise where.error(f"object {i} must be a JSON object, got {type(obj).__name__}")
    bad = [k for k in REJECTED_GEOMETRY_KEYS if k in obj]
    if bad:
        raise where.error(
            f"object {i}: unsupported geometry key {bad[0]!r} (only bbox_2d boxes are evaluated)"
        )
    vals, desc = obj.get("bbox_2d"), obj.get("desc")
    if not isinstance(vals, list) or len(vals) != 4:
        raise where.error(f"object {i}: `bbox_2d` must be a list of 4 values, got {vals!r}")
    if not isinstance(desc, str):
        raise where.error(f"object {i}: `desc` must be a string, got {desc!r}")
    nums = [_number(v, frame, where, i) for v in vals]
    w, h = wh
    px = box_px_round_clamp(nums, w, h) if frame == "pixel" else box_norm1000_to_px(nums, w, h)
    if not (px[2] > px[0] and px[3] > px[1]):
        raise where.error(
            f"object {i}: bbox_2d {vals} is empty or reversed ({px} in the {w}x{h} image)"
        )
    outside = frame == "pixel" and (min(nums) < 0 or max(nums[0::2]) > w or max(nums[1::2]) > h)
    if outside and where.notes is not None:
        where.notes.append(
            f"{where.path} line {where.line}: object {i} bbox_2d {vals} lies outside the "
            f"{w}x{h} image; clamped to {px}"
        )
    return Box(*px, label=desc.strip())


def parse_record(
    rec: dict,
    *,
    path: Path,
    line: int,
    index: int,
    frame: str,
    notes: list[str] | None = None,
    image_root: str | Path | None = None,
) -> Sample:
    """One JSONL record -> Sample (raises DataError naming file, line and sample); warnings
    (pixel boxes clamped into the image) are appended to `notes`."""
    where = _Where(path, line, notes)
    image_id = rec.get("image_id")
    if image_id is not None and (isinstance(image_id, bool) or not isinstance(image_id, int | str)):
        raise where.error(f"`image_id` must be an int or a string, got {image_id!r}")
    where.sample = str(image_id) if image_id is not None else None
    rel = _image_rel(rec, where, image_root)
    where.sample = where.sample or rel
    w, h = _positive_int(rec, "width", where), _positive_int(rec, "height", where)
    objects = rec.get("objects")
    if not isinstance(objects, list):
        raise where.error(f"`objects` must be a list (may be empty), got {objects!r}")
    boxes = tuple(_box(o, i, frame, (w, h), where) for i, o in enumerate(objects))
    image_path = Path(rel) if Path(rel).is_absolute() else path.parent / rel
    if not image_path.is_file():
        raise where.error(f"image not found: {image_path}")
    escape = symlink_escape(path.parent, rel, allowed_roots(path, image_root))
    if escape:
        raise where.error(escape)
    extra = {k: rec[k] for k in EXTRA_KEYS if k in rec}
    if any("category_id" in o or "coco_ann_id" in o for o in objects):
        extra["coco_ids"] = [
            {"category_id": o.get("category_id"), "coco_ann_id": o.get("coco_ann_id")}
            for o in objects
        ]
    return Sample(
        sample_id=where.sample,
        index=index,
        image_path=str(image_path),
        image=rel,
        width=w,
        height=h,
        boxes=boxes,
        image_id=image_id if isinstance(image_id, int) else None,
        extra=extra,
    )


# --------------------------------------------------------------------------- public API


def load_samples(
    jsonl_path: str | Path, *, limit: int | None = None, image_root: str | Path | None = None
) -> list[Sample]:
    """The first `limit` records of a preset JSONL as Samples, validated (not decoded);
    absolute image paths are allowed under the JSONL's folder and `image_root`."""
    path = Path(jsonl_path)
    rows = read_dataset_lines(path, limit=limit)
    if not rows:
        if limit == 0 and read_dataset_lines(path, limit=1):
            return []
        raise DataError(f"no records in {path}: the dataset is empty")
    frame = detect_frame(path, [r for _, _, r in rows])
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    notes: list[str] = []
    for index, (line, _, rec) in enumerate(rows):
        s = parse_record(
            rec,
            path=path,
            line=line,
            index=index,
            frame=frame,
            notes=notes,
            image_root=image_root,
        )
        if s.sample_id in seen:
            raise DataError(
                f"duplicate sample id {s.sample_id!r} in {path} "
                f"lines {seen[s.sample_id]} and {line} "
                "(ids are image_id when present, else images[0])"
            )
        seen[s.sample_id] = line
        samples.append(s)
    if notes:
        log.warning(
            "%d GT box(es) outside their image were clamped into it, first: %s",
            len(notes),
            notes[0],
        )
    return samples


def gt_objects(sample: Sample) -> list[dict[str, Any]]:
    """The upstream `gt` list [UP-GT-VS-PRED]: `{"type": "bbox_2d", "points": [ints], "desc"}`,
    pixel space."""
    return [
        {"type": "bbox_2d", "points": [int(b.x0), int(b.y0), int(b.x1), int(b.y1)], "desc": b.label}
        for b in sample.boxes
    ]


def dataset_fingerprint(jsonl_path: str | Path, samples: list[Sample]) -> str:
    """sha256 of the records used (their JSONL bytes) and of their image names.

    Only the first `len(samples)` records count, so `--limit 200` runs of a file that later grew
    keep their identity. Image files are not part of it: a corrupt image repaired between two
    sessions must not orphan the finished records; `image_sizes` guards the finished ones instead.
    """
    h = hashlib.sha256(b"coordbench-dataset-v2\n")
    for _, raw, _ in read_dataset_lines(jsonl_path, limit=len(samples)):
        h.update(raw.strip() + b"\n")
    for s in samples:
        h.update(f"{s.image}\n".encode())
    return h.hexdigest()


def image_sizes(samples: list[Sample]) -> dict[str, int]:
    """Bytes on disk of every sample's image, by sample id (a missing image is a named error).

    Stored in run.json, so a resumed run can refuse when an image behind a finished record was
    swapped, while images not yet generated may change (a repaired file). Sizes, not hashes:
    reading 5000 images to start a run would cost more than the check is worth.
    """
    out: dict[str, int] = {}
    for s in samples:
        try:
            out[s.sample_id] = os.stat(s.image_path).st_size
        except OSError:
            raise DataError(f"image not found: {s.image_path} (sample {s.sample_id})") from None
    return out


def open_image(sample: Sample):
    """Decode a sample's image as 8-bit RGB (the shared guarded opener), checking it has the
    record's width x height."""
    path = sample.image_path
    rgb = open_rgb(path, who=f" (sample {sample.sample_id})")
    if rgb.size != (sample.width, sample.height):
        raise DataError(
            f"image {path} is {rgb.size[0]}x{rgb.size[1]} but its record says "
            f"{sample.width}x{sample.height} (sample {sample.sample_id}); "
            f"{exif_note(path)}"
        )
    return rgb


def dataset_category_docs(data: str | Path | None) -> list[dict[str, Any]] | None:
    """The data set's `categories.json` entries (id, name, and e.g. LVIS's frequency and
    synonyms) in id order, or None when it declares none."""
    if not data:
        return None
    path = Path(data).parent / CATEGORIES_JSON
    if not path.is_file():
        return None
    try:
        cats = json.loads(path.read_bytes())
        return sorted((c for c in cats if isinstance(c, dict)), key=lambda c: c["id"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(
            f"{path}: expected a JSON list of {{id, name}} categories ({type(e).__name__}: {e})"
        ) from None


def dataset_vocabulary(data: str | Path | None) -> list[str] | None:
    """The data set's declared vocabulary: `categories.json` next to its JSONL, names in id
    order (what `coordbench data coco` writes), else None (the GT descs are the vocabulary).
    Detection scores against it and native prompts name it."""
    docs = dataset_category_docs(data)
    return None if docs is None else [str(c["name"]) for c in docs]
