"""Seeded synthetic "shapes" detection data: the embedded default data set.

Designed to be learnable by a ~4M-parameter VLM in about an hour on a 2-core CPU: few (0-3),
large, non-overlapping objects, one distinct colour per class, on a textured colour-ramp
background that tells every patch where it is (see `_background`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from coordbench.config.run import user_data_root
from coordbench.geometry import box_px_to_norm1000, coord_token

SIZE = 256  # 256x256 = 32*32*64 pixels: the fixpoint of smart_resize under the "64" preset
CLASSES: dict[str, tuple[int, int, int]] = {
    "circle": (220, 30, 30),
    "square": (30, 60, 220),
    "triangle": (20, 170, 40),
    "diamond": (235, 200, 20),
    "cross": (200, 40, 200),
}
MIN_SIDE, MAX_SIDE = 40, 112
MAX_OBJECTS = 3


@dataclass(frozen=True)
class ShapeObject:
    desc: str
    bbox_px: tuple[int, int, int, int]  # inclusive pixel box, xyxy in [0, SIZE-1]


def _background(rng: np.random.Generator) -> Image.Image:
    """A colour ramp (red rises left to right, green top to bottom) with grain and faint blotches.

    The ramp makes every background pixel say where it is, so a ~4M-parameter model with
    rotary-only positions can localise after an hour of CPU training; blue stays near 128, which
    separates the background from every shape colour (their blue is <= 40 or >= 200).
    """
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[..., 0] = 30 + 195 * xx
    img[..., 1] = 30 + 195 * yy
    img[..., 2] = rng.uniform(110, 146)
    coarse = rng.normal(0, 4, (8, 8, 3)).astype(np.float32)
    img += np.kron(coarse, np.ones((SIZE // 8, SIZE // 8, 1), np.float32))
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _draw(draw: ImageDraw.ImageDraw, desc: str, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    color = CLASSES[desc]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if desc == "circle":
        draw.ellipse(box, fill=color)
    elif desc == "square":
        draw.rectangle(box, fill=color)
    elif desc == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=color)
    elif desc == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=color)
    else:  # cross: two bars, a third of the side thick
        tw, th = (x1 - x0) / 6, (y1 - y0) / 6
        draw.rectangle((x0, cy - th, x1, cy + th), fill=color)
        draw.rectangle((cx - tw, y0, cx + tw, y1), fill=color)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 4) -> bool:
    return not (a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1])


def make_image(seed: int) -> tuple[Image.Image, list[ShapeObject]]:
    """One image and its objects, a pure function of `seed`."""
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    img = _background(rng)
    draw = ImageDraw.Draw(img)
    n = prng.choices(range(MAX_OBJECTS + 1), weights=(1, 3, 3, 3))[0]
    objects: list[ShapeObject] = []
    for _ in range(n * 20):  # rejection sampling for non-overlapping placements
        if len(objects) == n:
            break
        desc = prng.choice(list(CLASSES))
        w = prng.randint(MIN_SIDE, MAX_SIDE)
        h = w if desc in ("circle", "square") else prng.randint(MIN_SIDE, MAX_SIDE)
        x0, y0 = prng.randint(0, SIZE - 1 - w), prng.randint(0, SIZE - 1 - h)
        box = (x0, y0, x0 + w, y0 + h)
        if any(_overlaps(box, o.bbox_px) for o in objects):
            continue
        _draw(draw, desc, box)
        objects.append(ShapeObject(desc, box))
    return img, objects


def split_seed(split: str, index: int, base_seed: int = 0) -> int:
    """Disjoint seed streams per split, so train never contains a val image."""
    offset = {"train": 1_000_000, "val": 0, "test": 2_000_000}[split]
    return base_seed * 10_000_000 + offset + index


def objects_norm1000(objects: list[ShapeObject]) -> list[dict]:
    """Objects in the `.norm.jsonl` frame, sorted by (y1, x1) as upstream [UP-NORM1000]."""
    out = [{"desc": o.desc, "bbox_2d": box_px_to_norm1000(o.bbox_px, SIZE, SIZE)} for o in objects]
    return sorted(out, key=lambda o: (o["bbox_2d"][1], o["bbox_2d"][0]))


def write_split(out_dir: str | Path, split: str = "val", n: int = 64, base_seed: int = 0) -> Path:
    """Write `images/<split>/*.png` and the three JSONL files of the data contract.

    See [ARCH-DATA-CONTRACT].
    """
    out = Path(out_dir)
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    files = {k: [] for k in ("pixel", "norm", "coord")}
    for i in range(n):
        img, objects = make_image(split_seed(split, i, base_seed))
        rel = f"images/{split}/{i:05d}.jpg"
        img.save(out / rel, quality=92)  # JPEG as upstream presets; ~20 KB each
        head = {"images": [rel], "width": SIZE, "height": SIZE}
        tail = {"image_id": i, "file_name": rel, "metadata": {"source": "shapes", "split": split}}
        pixel = [{"bbox_2d": list(o.bbox_px), "desc": o.desc} for o in objects]
        norm = objects_norm1000(objects)
        coord = [
            {"bbox_2d": [coord_token(v) for v in o["bbox_2d"]], "desc": o["desc"]} for o in norm
        ]
        for key, objs in (("pixel", pixel), ("norm", norm), ("coord", coord)):
            files[key].append({**head, "objects": objs, **tail})
    names = {
        "pixel": f"{split}.jsonl",
        "norm": f"{split}.norm.jsonl",
        "coord": f"{split}.coord.jsonl",
    }
    for key, rows in files.items():
        # upstream layout: Python default separators, ensure_ascii=False [UP-RECORD-SCHEMA]
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / names[key]).write_text(text, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    """Regenerate the committed embedded split: `python -m coordbench.data.shapes`."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    # the checkout's public_data/shapes (shipped as package data through a symlink); when
    # installed, ./public_data/shapes of the working directory, never site-packages
    ap.add_argument("--out", default=str(user_data_root() / "public_data" / "shapes"))
    ap.add_argument("--split", default="val")
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(write_split(args.out, args.split, args.n, args.seed))


if __name__ == "__main__":
    main()
