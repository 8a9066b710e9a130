"""A tiny, seeded, val2017-shaped COCO for converter tests (< 1 s to build).

Layout as the real thing: `annotations/instances_val2017.json` (the 80 official category ids and
names) and `val2017/<12-digit id>.jpg`. Every annotation is tagged at construction with what
upstream's converter must do with it (keep / crowd / outside / zero), so the tests' expected
counts come from this file, not from the converter.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Official COCO 2017 category ids (1..90 with 10 gaps) and names, in id order.
COCO_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"),
    (2, "bicycle"),
    (3, "car"),
    (4, "motorcycle"),
    (5, "airplane"),
    (6, "bus"),
    (7, "train"),
    (8, "truck"),
    (9, "boat"),
    (10, "traffic light"),
    (11, "fire hydrant"),
    (13, "stop sign"),
    (14, "parking meter"),
    (15, "bench"),
    (16, "bird"),
    (17, "cat"),
    (18, "dog"),
    (19, "horse"),
    (20, "sheep"),
    (21, "cow"),
    (22, "elephant"),
    (23, "bear"),
    (24, "zebra"),
    (25, "giraffe"),
    (27, "backpack"),
    (28, "umbrella"),
    (31, "handbag"),
    (32, "tie"),
    (33, "suitcase"),
    (34, "frisbee"),
    (35, "skis"),
    (36, "snowboard"),
    (37, "sports ball"),
    (38, "kite"),
    (39, "baseball bat"),
    (40, "baseball glove"),
    (41, "skateboard"),
    (42, "surfboard"),
    (43, "tennis racket"),
    (44, "bottle"),
    (46, "wine glass"),
    (47, "cup"),
    (48, "fork"),
    (49, "knife"),
    (50, "spoon"),
    (51, "bowl"),
    (52, "banana"),
    (53, "apple"),
    (54, "sandwich"),
    (55, "orange"),
    (56, "broccoli"),
    (57, "carrot"),
    (58, "hot dog"),
    (59, "pizza"),
    (60, "donut"),
    (61, "cake"),
    (62, "chair"),
    (63, "couch"),
    (64, "potted plant"),
    (65, "bed"),
    (67, "dining table"),
    (70, "toilet"),
    (72, "tv"),
    (73, "laptop"),
    (74, "mouse"),
    (75, "remote"),
    (76, "keyboard"),
    (77, "cell phone"),
    (78, "microwave"),
    (79, "oven"),
    (80, "toaster"),
    (81, "sink"),
    (82, "refrigerator"),
    (84, "book"),
    (85, "clock"),
    (86, "vase"),
    (87, "scissors"),
    (88, "teddy bear"),
    (89, "hair drier"),
    (90, "toothbrush"),
)

# (image id, width, height, number of ordinary kept anns, special anns); sizes from the worked
# smart-resize table of [UP-RESIZE] where possible, listed out of id order on purpose.
_IMAGES = (
    (802, 333, 500, 1, ()),
    (139, 640, 427, 3, ("crowd", "thin")),
    (1296, 640, 480, 0, ()),  # no annotations at all -> dropped
    (285, 640, 480, 2, ("outside",)),
    (632, 480, 640, 2, ("zero",)),
    (724, 500, 375, 1, ("edge",)),
    (776, 612, 612, 2, ()),
    (785, 640, 360, 1, ()),
    (872, 375, 500, 8, ()),  # the dense one, for --max-objects
    (885, 640, 480, 0, ("crowd", "outside")),  # only invalid anns -> dropped
    (1000, 320, 240, 1, ()),
    (1268, 427, 640, 2, ()),
)
DENSE_ID = 872


@dataclass
class CocoFixture:
    root: Path
    split: str = "val2017"
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # image id -> original (w, h)
    kept: dict[int, list[int]] = field(default_factory=dict)  # image id -> kept ann ids, by ann id
    counts: dict[str, int] = field(default_factory=dict)  # keep/crowd/outside/zero/total
    empty_ids: list[int] = field(default_factory=list)  # images the converter must drop

    @property
    def kept_ids(self) -> list[int]:
        """Image ids that survive, ascending (the converter's record order)."""
        return sorted(self.kept)

    def image_path(self, image_id: int) -> Path:
        return self.root / self.split / f"{image_id:012d}.jpg"

    @property
    def annotation_path(self) -> Path:
        return self.root / "annotations" / f"instances_{self.split}.json"


def _special(kind: str, w: int, h: int) -> tuple[list[float], int]:
    """bbox (xywh) and iscrowd of a tagged special annotation."""
    return {
        "crowd": ([10.0, 10.0, w / 2, h / 3], 1),
        "outside": ([w - 30.0, 5.0, 40.0, 20.0], 0),  # x + w = W + 10 -> skipped, not clipped
        "zero": ([50.0, 60.0, 0.0, 25.0], 0),
        "thin": ([10.1, 20.0, 0.2, 30.0], 0),  # kept; collapses on resize and gets widened
        "edge": ([w - 100.0, h - 50.0, 100.0, 50.0], 0),  # touches the right/bottom border
    }[kind]


def _image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, np.full_like(xx, rng.uniform(0, 255))], -1)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_coco(root: str | Path, *, seed: int = 0) -> CocoFixture:
    """Write the fixture under `root` and return what the converter should make of it."""
    fx = CocoFixture(Path(root))
    prng, rng = random.Random(seed), np.random.default_rng(seed)
    (fx.root / "annotations").mkdir(parents=True, exist_ok=True)
    (fx.root / fx.split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    counts = dict.fromkeys(("keep", "crowd", "outside", "zero"), 0)
    next_ann = 900_000
    for image_id, w, h, n_plain, specials in _IMAGES:
        name = f"{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": name, "width": w, "height": h, "license": 1})
        _image(rng, w, h).save(fx.root / fx.split / name, quality=85)
        fx.sizes[image_id] = (w, h)
        mine: list[tuple[int, list[float], int, str]] = []
        for _ in range(n_plain):
            bw, bh = prng.uniform(8, w / 2), prng.uniform(8, h / 2)
            box = [
                round(prng.uniform(0, w - bw), 2),
                round(prng.uniform(0, h - bh), 2),
                round(bw, 2),
                round(bh, 2),
            ]
            mine.append((0, box, 0, "keep"))
        for kind in specials:
            box, crowd = _special(kind, w, h)
            mine.append((0, box, crowd, "keep" if kind in ("thin", "edge") else kind))
        ids = prng.sample(range(next_ann, next_ann + 1000), len(mine))  # ann ids not in list order
        next_ann += 1000
        for ann_id, (_, box, crowd, kind) in zip(ids, mine, strict=True):
            cat_id, _ = prng.choice(COCO_CATEGORIES)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat_id,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": crowd,
                    "segmentation": [],
                }
            )
            counts[kind] += 1
            if kind == "keep":
                fx.kept.setdefault(image_id, []).append(ann_id)
        if image_id not in fx.kept:
            fx.empty_ids.append(image_id)
    prng.shuffle(anns)
    for ids in fx.kept.values():
        ids.sort()
    counts["total"] = len(anns)
    fx.counts = counts
    cats = [{"id": i, "name": n, "supercategory": "thing"} for i, n in COCO_CATEGORIES]
    coco = {
        "info": {"description": "coordbench test fixture"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": cats,
    }
    fx.annotation_path.write_text(json.dumps(coco))
    return fx
