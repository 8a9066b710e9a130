"""Synthetic run dirs for the compare / gates / log tests, scored by the real scoring library.

`make_run` writes the rundir schema files (run.json, gt_vs_pred.jsonl, gt_vs_pred_scored.jsonl,
summary.json, eval/*) for hand-made GT and predictions, so a run's own metrics are known and
compare's numbers can be checked against them. The tests at the bottom pin the builder itself
to pycocotools, so a wrong fixture cannot hide a wrong compare.
"""

from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from coordbench.config.run import identity_hash
from coordbench.rundir import files as A

CLASSES = ("circle", "square", "triangle", "star")

BASE_IDENTITY: dict[str, Any] = {
    "package_version": "0.1.0",
    "checkpoint": {"path_name": "ckpt-a", "sha256": "a" * 64, "adapter": None},
    "dataset": {
        "path_name": "val.coord.jsonl",
        "sha256": "d" * 64,
        "num_samples": 0,
        "limit": None,
    },
    "preset": "768",
    "prompt": {
        "name": "coco80_desc_first",
        "template_hash": "80bc24bf" + "0" * 56,
        "layout": "text_first",
        "surface": "coord_tokens",
    },
    "decode": {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "max_new_tokens": 1024,
    },
    "seed": 0,
    "backend": "hf",
    "options": {"parse": {}, "confidence": {}, "eval": {}},
}


def one_hot_encoder(texts: list[str]):
    """Stand-in for MiniLM: each class name its own axis, so distinct classes have
    cosine 0 (no torch)."""
    import numpy as np

    out = np.zeros((len(texts), len(CLASSES) + len(texts)), dtype=np.float32)
    for i, t in enumerate(texts):
        out[i, CLASSES.index(t) if t in CLASSES else len(CLASSES) + i] = 1.0
    return out


def make_samples(
    n: int, seed: int = 123, size: tuple[int, int] = (640, 480)
) -> list[dict[str, Any]]:
    """n images with 1-5 non-overlapping GT boxes each (a grid of cells, one box per cell)."""
    rng = random.Random(seed)
    w, h = size
    out = []
    for i in range(n):
        cells = rng.sample(range(12), rng.randint(1, 5))
        gt = []
        for c in cells:
            cx, cy = (c % 4) * (w // 4), (c // 4) * (h // 3)
            bw, bh = rng.randint(40, w // 4 - 10), rng.randint(40, h // 3 - 10)
            x0, y0 = cx + rng.randint(0, w // 4 - bw - 1), cy + rng.randint(0, h // 3 - bh - 1)
            gt.append(
                {
                    "type": "bbox_2d",
                    "points": [x0, y0, x0 + bw, y0 + bh],
                    "desc": rng.choice(CLASSES),
                }
            )
        out.append(
            {
                "sample_id": str(1000 + i),
                "image": f"images/{1000 + i}.jpg",
                "width": w,
                "height": h,
                "gt": gt,
            }
        )
    return out


def noisy_predictor(
    samples: list[dict],
    seed: int,
    *,
    keep: float = 0.8,
    jitter: int = 6,
    wrong_class: float = 0.1,
    extra: float = 0.3,
) -> list[list[dict]]:
    """Per sample: each GT found with prob `keep` (jittered, sometimes the wrong class),
    plus spurious boxes."""
    rng = random.Random(seed)
    preds = []
    for s in samples:
        p = []
        for g in s["gt"]:
            if rng.random() > keep:
                continue
            x0, y0, x1, y1 = (v + rng.randint(-jitter, jitter) for v in g["points"])
            desc = rng.choice(CLASSES) if rng.random() < wrong_class else g["desc"]
            p.append(
                {
                    "type": "bbox_2d",
                    "points": [max(0, x0), max(0, y0), x1, y1],
                    "desc": desc,
                    "score": round(rng.uniform(0.5, 1.0), 4),
                }
            )
        while rng.random() < extra:
            x0, y0 = rng.randint(0, s["width"] - 60), rng.randint(0, s["height"] - 60)
            p.append(
                {
                    "type": "bbox_2d",
                    "points": [x0, y0, x0 + 50, y0 + 50],
                    "desc": rng.choice(CLASSES),
                    "score": round(rng.uniform(0.0, 0.6), 4),
                }
            )
        preds.append(p)
    return preds


def drop_half(preds: list[list[dict]]) -> list[list[dict]]:
    """A crippled predictor: the same boxes, every second one dropped."""
    return [p[::2] for p in preds]


def make_run(
    root: Path,
    name: str,
    samples: list[dict],
    preds: list[list[dict]],
    *,
    identity: dict | None = None,
    batch_size: int = 8,
    statuses: list[str] | None = None,
    finished: bool = True,
    summary: bool = True,
    wall_seconds: float = 10.0,
    provenance: dict | None = None,
) -> Path:
    """Write a run dir; `identity` entries override BASE_IDENTITY
    (nested dicts merged one level)."""
    from coordbench.metrics.detection import score_detections
    from coordbench.metrics.eval_files import write_eval_dir
    from coordbench.metrics.scoring import EvalOptions
    from coordbench.metrics.summary import build_summary
    from coordbench.tasks import get_task

    ident = copy.deepcopy(BASE_IDENTITY)
    for k, v in (identity or {}).items():
        ident[k] = (
            {**ident[k], **v} if isinstance(v, dict) and isinstance(ident.get(k), dict) else v
        )
    ident["dataset"]["num_samples"] = len(samples)
    rd = root / name
    rd.mkdir(parents=True)
    statuses = statuses or ["ok" if p else "empty" for p in preds]
    recs, scored = [], []
    for i, (s, p, st) in enumerate(zip(samples, preds, statuses, strict=True)):
        unscored = [{k: v for k, v in o.items() if k != "score"} for o in p]
        rec = {
            "image": s["image"],
            "width": s["width"],
            "height": s["height"],
            "mode": "coord",
            "coord_mode": "pixel",
            "gt": s["gt"],
            "pred": unscored,
            "raw_output_json": None,
            "raw_special_tokens": [],
            "raw_ends_with_im_end": True,
            "errors": [],
            "error_entries": [],
            "sample_id": s["sample_id"],
            "index": i,
            "raw_text": "",
            "parse_status": st,
            "parse_issues": [],
            "finish_reason": "stop",
            "n_new_tokens": 10,
            "n_prompt_tokens": 100,
        }
        recs.append(rec)
        scored.append(
            {**rec, "pred": p, "pred_score_source": "confidence_postop", "pred_score_version": 2}
        )
    prov = {
        "world_size": 1,
        "batch_size": batch_size,
        "wall_seconds": wall_seconds,
        "samples_per_s": round(len(samples) / wall_seconds, 3),
        **(provenance or {}),
    }
    if finished:
        prov["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    head = {
        "identity_hash": identity_hash(ident),
        "identity": ident,
        "config": {"batch_size": batch_size, "preset": ident["preset"], "seed": ident["seed"]},
        "provenance": prov,
    }
    A.write_json(rd / A.RUN_JSON, head)
    A.write_jsonl(rd / A.GT_VS_PRED, recs)
    if not summary:
        return rd
    A.write_jsonl(rd / A.SCORED, scored)
    result = score_detections(scored, EvalOptions(), encoder=one_hot_encoder)
    write_eval_dir(result, rd / "eval")
    A.write_json(
        rd / A.SUMMARY,
        build_summary(head, recs, result, {}, headline=get_task(None).headline_keys()),
    )
    return rd


def scored_metrics(run_dir: Path, keep: set[str] | None = None) -> dict[str, float]:
    """Independent re-score of a run's scored records (optionally a subset of sample ids)."""
    from coordbench.metrics.detection import score_detections
    from coordbench.metrics.scoring import EvalOptions

    recs, _ = A.read_jsonl(run_dir / A.SCORED)
    if keep is not None:
        recs = [r for r in recs if r["sample_id"] in keep]
    return score_detections(recs, EvalOptions(), encoder=one_hot_encoder).metrics


# --------------------------------------------------------------------------- the builder itself


def test_builder_metrics_equal_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    samples = make_samples(12)
    rd = make_run(tmp_path, "a", samples, noisy_predictor(samples, 1))
    gt = COCO(str(rd / "eval/coco_gt.json"))
    ev = COCOeval(gt, gt.loadRes(json.loads((rd / "eval/coco_preds.json").read_text())), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    summary = A.read_json(rd / A.SUMMARY)
    assert summary["metrics"]["bbox_AP"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert 0.2 < summary["metrics"]["bbox_AP"] < 0.95


def test_drop_half_halves_the_predictions(tmp_path):
    samples = make_samples(12)
    preds = noisy_predictor(samples, 1)
    assert sum(map(len, drop_half(preds))) == sum((len(p) + 1) // 2 for p in preds)
