"""lvis-api (the `lvis` package, the LVIS reference) as a test oracle, and seeded random
federated LVIS sets. lvis 0.5.3 uses `np.float`, gone in NumPy 2: the shim below restores the
alias for the oracle only (never in the package)."""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

if not hasattr(np, "float"):
    np.float = float  # type: ignore[attr-defined]  # test-only shim for lvis-api 0.5.3


def lvis_api_stats(gt: dict, results: list[dict], max_dets: int = 300) -> dict[str, float]:
    from lvis import LVIS, LVISEval, LVISResults

    logging.getLogger("lvis").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        lg = LVIS.__new__(LVIS)
        lg.logger = logging.getLogger("lvis")
        lg.dataset = gt
        lg._create_index()
        ld = LVISResults(lg, [dict(r) for r in results], max_dets=max_dets)
        ev = LVISEval(lg, ld, "bbox")
        ev.run()
    return {k: float(v) for k, v in ev.results.items()}


def random_lvis(seed: int, n_img: int = 30, n_cat: int = 25, dets_per_img: int = 40):
    """A federated GT (pos / neg / not-exhaustive lists, r/c/f frequencies, ignore flags, all
    area ranges) and results with ties, unknown-pair categories and images over the 300 cap."""
    rng = np.random.default_rng(seed)
    cats = [
        {"id": k + 1, "name": f"c{k}", "synonyms": [f"c{k}"], "frequency": "rcf"[k % 3]}
        for k in range(n_cat)
    ]
    images, anns = [], []
    aid = 1
    for i in range(n_img):
        w, h = int(rng.integers(64, 640)), int(rng.integers(64, 640))
        pos = sorted(rng.choice(n_cat, size=int(rng.integers(0, 5)), replace=False).tolist())
        rest = [c for c in range(n_cat) if c not in pos]
        neg = sorted(
            rng.choice(rest, size=min(len(rest), int(rng.integers(0, 6))), replace=False).tolist()
        )
        nel = [c for c in pos if rng.random() < 0.3]
        images.append(
            {
                "id": 100 + i,
                "width": w,
                "height": h,
                "neg_category_ids": [c + 1 for c in neg],
                "not_exhaustive_category_ids": [c + 1 for c in nel],
            }
        )
        for c in pos:
            for _ in range(int(rng.integers(1, 4))):
                bw, bh = rng.uniform(2, w / 2), rng.uniform(2, h / 2)
                x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                box = [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]
                anns.append(
                    {
                        "id": aid,
                        "image_id": 100 + i,
                        "category_id": c + 1,
                        "bbox": box,
                        "area": round(box[2] * box[3] * rng.uniform(0.5, 1.0), 2),
                        **({"ignore": 1} if rng.random() < 0.05 else {}),
                    }
                )
                aid += 1
    results = []
    for im in images:
        mine = [a for a in anns if a["image_id"] == im["id"]]
        n = dets_per_img if rng.random() < 0.8 else 320  # some images over the 300 cap
        for _ in range(n):
            if mine and rng.random() < 0.5:
                a = mine[int(rng.integers(len(mine)))]
                jit = rng.normal(0, 0.1, 4) * np.array(a["bbox"])[[2, 3, 2, 3]]
                box = (np.array(a["bbox"]) + jit).clip(0.5).round(2).tolist()
                cat = a["category_id"] if rng.random() < 0.8 else int(rng.integers(1, n_cat + 1))
            else:
                bw, bh = rng.uniform(2, im["width"] / 2), rng.uniform(2, im["height"] / 2)
                box = [
                    round(rng.uniform(0, im["width"] - bw), 2),
                    round(rng.uniform(0, im["height"] - bh), 2),
                    round(bw, 2),
                    round(bh, 2),
                ]
                cat = int(rng.integers(1, n_cat + 1))
            score = round(float(rng.random()), 2)  # 2 decimals: many ties
            results.append({"image_id": im["id"], "category_id": cat, "bbox": box, "score": score})
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, results
