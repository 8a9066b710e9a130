"""End-to-end `coordbench eval` vs pycocotools' evaluate+accumulate+summarize, same input.

What a user waits for is the whole command: process start, reading the JSONL, ingest, COCO,
F1, calibration, diagnostics and writing the eval dir. This bench times exactly that as a
subprocess on a seeded synthetic set (2 000 images x 100 detections = 200 k, built by
`scoring_speed.synthetic_records`), then runs pycocotools on the COCO files the command wrote
(`eval/coco_gt.json`, `eval/coco_preds.json`), checks that all 12 stats equal metrics.json's
to 1e-12 and prints the ratio last. The same two files also go through
`coordbench eval --coco-gt/--coco-dt` (any detector's COCO pair), timed the same way.

    .venv/bin/python bench/eval_e2e_speed.py [--images 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scoring_speed import synthetic_records  # noqa: E402

STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def pycocotools_eval(gt_path: Path, dt_path: Path) -> tuple[np.ndarray, float]:
    """12 stats and seconds of COCO load + loadRes + evaluate + accumulate + summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_doc, dt_doc = json.loads(gt_path.read_text()), json.loads(dt_path.read_text())
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dt_doc), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12]), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--dets", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="write the input and eval dir here instead of a temp dir")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        src, out = work / "gt_vs_pred_scored.jsonl", work / "eval"
        recs = synthetic_records(args.images, args.seed, dets=args.dets)
        src.write_text("".join(json.dumps(r) + "\n" for r in recs))
        n_det = sum(len(r["pred"]) for r in recs)
        print(f"input: {args.images} images, {n_det} detections, {src.stat().st_size / 1e6:.1f} MB")

        cmd = [sys.executable, "-m", "coordbench", "eval", str(src), "--out", str(out)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        t_ours = time.perf_counter() - t0
        if done.returncode:
            print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
            return 1
        metrics = json.loads((out / "metrics.json").read_text())["metrics"]
        ours = np.array([metrics[f"bbox_{s}"] for s in STATS])

        pair = [sys.executable, "-m", "coordbench", "eval", "--coco-gt", str(out / "coco_gt.json")]
        pair += ["--coco-dt", str(out / "coco_preds.json"), "--out", str(work / "pair")]
        t0 = time.perf_counter()
        done = subprocess.run(pair, capture_output=True, text=True, env=os.environ.copy())
        t_pair = time.perf_counter() - t0
        if done.returncode:
            print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
            return 1
        pair_metrics = json.loads((work / "pair" / "metrics.json").read_text())["metrics"]
        pair_stats = np.array([pair_metrics[f"bbox_{s}"] for s in STATS])

        ref, t_ref = pycocotools_eval(out / "coco_gt.json", out / "coco_preds.json")
        diff = np.abs(ours - ref)
        for name, a, b, d in zip(STATS, ours, ref, diff, strict=True):
            print(f"  {name:<6} coordbench {a:.12f}  pycocotools {b:.12f}  |diff| {d:.1e}")
        print(f"coordbench eval (subprocess, end to end): {t_ours:7.2f} s")
        print(f"pycocotools evaluate+accumulate+summarize: {t_ref:7.2f} s")
        pair_ok = bool(np.all(np.abs(pair_stats - ref) <= 1e-12))
        print(f"coordbench eval --coco-gt/--coco-dt (subprocess): {t_pair:7.2f} s, ", end="")
        print(f"ratio {t_ref / t_pair:.2f}, 12 stats equal: {pair_ok}")
        ok = bool(np.all(diff <= 1e-12)) and pair_ok
        print(f"all 12 stats equal (1e-12): {ok}")
        print(f"ratio pycocotools / coordbench eval: {t_ref / t_ours:.2f}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
