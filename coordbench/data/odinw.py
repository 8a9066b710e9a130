"""ODinW-13 -> one COCO-format preset folder per member data set.

The GLIP / mmdetection layout (`odinw/<data set>/.../<split>/annotations_without_background.json`
beside the split's images) that the official Qwen3-VL ODinW script reads. Each member keeps its
own annotation file and vocabulary: its `categories.json` lists that member's classes, so a
native prompt names them. `MEMBERS` holds, per member, the folder, the image folder (the split
the protocol scores) and the annotation file name; docs/odinw.md lists them with their sources.
Images without annotations are kept (their boxes still count as false positives, as in
COCOeval on the official file); boxes pass the same checks as `data coco` (zero-size and
out-of-image boxes dropped and counted in conversion_stats.json). Images go through the shared
`coco.build_preset` (resize under the rescale preset, atomic publish). [ARCH-GROUPS]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench.data.coco import (
    COCO_LISTS,
    ConversionStats,
    PresetSpec,
    build_preset,
    check_out_dir,
    keep_ann,
    read_json_object,
)
from coordbench.data.resize import MIN_PIXELS
from coordbench.errors import DataError

SPLIT_STEM = "test"  # every member's scored split is written as test.jsonl (+ norm/coord)
ANN = "annotations_without_background.json"


@dataclass(frozen=True)
class Member:
    name: str
    folder: str  # under --odinw-root
    images: str  # the scored split's image folder, under `folder`
    annotations: str = ANN  # under `folder/images`

    def annotation_path(self, root: Path) -> Path:
        return root / self.folder / self.images / self.annotations


# the scored split of each member as GLIP's / mmdetection's odinw13 test configs have it
MEMBERS: tuple[Member, ...] = (
    Member("AerialMaritimeDrone_large", "AerialMaritimeDrone/large", "test"),
    Member("Aquarium", "Aquarium/Aquarium Combined.v2-raw-1024.coco", "test"),
    Member("CottontailRabbits", "CottontailRabbits", "test"),
    Member("EgoHands_generic", "EgoHands/generic", "test"),
    Member(
        "NorthAmericaMushrooms",
        "NorthAmericaMushrooms/North American Mushrooms.v1-416x416.coco",
        "test",
    ),
    Member("Packages", "Packages/Raw", "test"),
    Member("PascalVOC", "PascalVOC", "valid"),
    Member("pistols", "pistols", "export", "test_annotations_without_background.json"),
    Member("pothole", "pothole", "test"),
    Member("Raccoon", "Raccoon/Raccoon.v2-raw.coco", "test"),
    Member("ShellfishOpenImages", "ShellfishOpenImages/raw", "test"),
    Member("thermalDogsAndPeople", "thermalDogsAndPeople", "test"),
    Member("VehiclesOpenImages", "VehiclesOpenImages/416x416", "test"),
)
BY_NAME = {m.name: m for m in MEMBERS}


def pick_members(names: list[str] | None) -> list[Member]:
    if not names:
        return list(MEMBERS)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise DataError(
            f"unknown ODinW member(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}"
        )
    return [BY_NAME[n] for n in names]


def load_member(path: Path, member: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"ODinW member {member}: annotation file not found: {path}")
    return read_json_object(path, COCO_LISTS, "a COCO file")


def member_raw_records(
    doc: dict[str, Any], member: Member, stats: ConversionStats
) -> list[dict[str, Any]]:
    """COCO file -> raw pixel records by image id, images without boxes kept."""
    cats = {c["id"]: str(c["name"]) for c in doc["categories"] if isinstance(c, dict)}
    by_image: dict[Any, list[dict]] = {}
    stats.anns_total = len(doc["annotations"])
    for a in doc["annotations"]:
        if isinstance(a, dict):
            by_image.setdefault(a.get("image_id"), []).append(a)
    stats.images_total = len(doc["images"])
    out = []
    for img in sorted(doc["images"], key=lambda im: im.get("id", 0)):
        iid, name, w, h = (img.get(k) for k in ("id", "file_name", "width", "height"))
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise DataError(f"{member.name}: image {iid!r} needs a positive integer width/height")
        if not isinstance(name, str) or not name or {"/", "\\"} & set(name) or name in (".", ".."):
            raise DataError(f"{member.name}: image {iid!r} has no plain file_name ({name!r})")
        anns = sorted(by_image.get(iid, []), key=lambda a: int(a.get("id", 0)))
        objs = [o for a in anns if (o := keep_ann(a, (w, h), cats, stats, False)) is not None]
        rel = f"images/{member.images}/{name}"
        out.append(
            {
                "images": [rel],
                "objects": objs,
                "width": w,
                "height": h,
                "image_id": iid,
                "file_name": rel,
                "metadata": {"source": "odinw", "dataset": member.name, "split": member.images},
            }
        )
    return out


def convert_member(
    root: Path,
    member: Member,
    out_dir: Path,
    *,
    budget: int,
    factor: int,
    limit: int | None,
    workers: int,
    progress: bool,
    algorithm: str,
    min_pixels: int,
) -> ConversionStats:
    ann = member.annotation_path(root)
    check_out_dir(out_dir, root)
    doc = load_member(ann, member.name)
    stats = ConversionStats(out_dir=str(out_dir))
    candidates = member_raw_records(doc, member, stats)
    params = {
        "odinw_root": str(root),
        "member": member.name,
        "annotations": str(ann),
        "factor": factor,
        "budget": budget,
        "max_pixels": factor * factor * budget,
        "min_pixels": min_pixels,
        "algorithm": algorithm,
        "limit": limit,
    }
    spec = PresetSpec(
        root / member.folder,
        member.images,
        out_dir,
        SPLIT_STEM,
        factor,
        budget,
        min_pixels,
        algorithm,
    )
    names = {c["id"]: str(c["name"]) for c in doc["categories"] if isinstance(c, dict)}
    return build_preset(
        spec,
        candidates,
        names,
        stats,
        params,
        limit=limit,
        workers=workers,
        skip_bad=False,
        progress=progress,
        label=f"odinw {member.name}",
    )


def convert_odinw(
    odinw_root: str | Path,
    *,
    out_root: str | Path,
    members: list[str] | None = None,
    budget: int = 768,
    factor: int = 32,
    limit: int | None = None,
    workers: int = 2,
    progress: bool = True,
    algorithm: str = "current",
    min_pixels: int = MIN_PIXELS,
) -> dict[str, ConversionStats]:
    """Build `out_root/<member>/` (test.jsonl + norm/coord, images, categories.json) for each
    member; a member already built stays published when a later one fails."""
    if limit is not None and limit < 0:
        raise DataError(f"--limit must be >= 0, got {limit}")
    root, out = Path(odinw_root), Path(out_root)
    picked = pick_members(members)
    missing = [m.name for m in picked if not m.annotation_path(root).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} ODinW member(s) missing under {root}: "
            + "; ".join(f"{n} ({BY_NAME[n].annotation_path(root)})" for n in missing)
            + " (pass --members to build a subset)"
        )
    return {
        m.name: convert_member(
            root,
            m,
            out / m.name,
            budget=budget,
            factor=factor,
            limit=limit,
            workers=workers,
            progress=progress,
            algorithm=algorithm,
            min_pixels=min_pixels,
        )
        for m in picked
    }
