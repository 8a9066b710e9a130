"""A tiny RefCOCO built from the shapes generator: COCO-style train2014 images, MDETR's JSON and
refer's pickle + instances, with expressions like "the red circle on the left"."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from coordbench.data.shapes import make_image

COLOUR = {
    "circle": "red",
    "square": "blue",
    "triangle": "green",
    "diamond": "yellow",
    "cross": "purple",
}


def _side(box, size=256) -> str:
    cx = (box[0] + box[2]) / 2
    return "left" if cx < size / 2 else "right"


def make_refcoco(root: Path, n_images: int = 6, seed0: int = 100) -> dict:
    """Write root/coco/train2014/*.jpg, root/final_refcoco_val.json, root/refs(unc).p and
    root/instances.json; returns {expr_id: (query, xyxy box)}."""
    img_dir = root / "coco" / "train2014"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns, mdetr_imgs, mdetr_anns, refs, truth = [], [], [], [], [], {}
    expr = ann_id = 0
    for i in range(n_images):
        img, objects = make_image(seed0 + i)
        coco_id = 1000 + i
        name = f"COCO_train2014_{coco_id:012d}.jpg"
        img.save(img_dir / name, quality=90)
        images.append({"id": coco_id, "file_name": name, "width": 256, "height": 256})
        for o in objects:
            x0, y0, x1, y1 = o.bbox_px
            xywh = [x0, y0, x1 - x0, y1 - y0]
            ann_id += 1
            anns.append({"id": ann_id, "image_id": coco_id, "bbox": xywh, "category_id": 1})
            query = f"the {COLOUR[o.desc]} {o.desc} on the {_side(o.bbox_px)}"
            mdetr_imgs.append(
                {
                    "id": expr,
                    "file_name": name,
                    "width": 256,
                    "height": 256,
                    "caption": query,
                    "original_id": coco_id,
                    "dataset_name": "refcoco",
                }
            )
            mdetr_anns.append(
                {"id": expr, "image_id": expr, "bbox": xywh, "category_id": 1, "iscrowd": 0}
            )
            refs.append(
                {
                    "ref_id": ann_id,
                    "ann_id": ann_id,
                    "image_id": coco_id,
                    "split": "val" if i % 2 == 0 else "testA",
                    "sentences": [{"sent_id": 5000 + expr, "sent": query, "raw": query}],
                    "category_id": 1,
                }
            )
            truth[expr] = (query, [float(x0), float(y0), float(x1), float(y1)])
            expr += 1
    (root / "final_refcoco_val.json").write_text(
        json.dumps({"images": mdetr_imgs, "annotations": mdetr_anns, "categories": []})
    )
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": anns}))
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return truth
