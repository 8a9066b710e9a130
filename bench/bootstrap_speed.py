"""Paired bootstrap speed: 1000 image resamples of two COCO-sized runs (goal: < 60 s on 2 cores).

Two synthetic runs over the same 5000 images (bench/scoring_speed.py's generator; B has other
predictions) are scored once; then the per-image COCO matching is computed once per run and
every resample re-runs only COCO's accumulate step (plus F1 sums), for AP, AP50, AP75, AR1,
AR100 and three F1 metrics.

    .venv/bin/python bench/bootstrap_speed.py [--images 5000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import sys
import time

from scoring_speed import synthetic_records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()

    from coordbench.metrics.bootstrap import DEFAULT_METRICS, BootstrapData, paired_bootstrap
    from coordbench.metrics.detection import score_detections
    from coordbench.metrics.scoring import EvalOptions

    t0 = time.perf_counter()
    runs = [synthetic_records(args.images, 0), synthetic_records(args.images, 0, pred_seed=1)]
    results = [score_detections(r, EvalOptions()) for r in runs]
    t1 = time.perf_counter()
    data = [BootstrapData.from_result(r) for r in results]
    coco = tuple(m.removeprefix("bbox_") for m in DEFAULT_METRICS if m.startswith("bbox_"))
    for d in data:
        d.coco(coco)  # the per-image matching, once per run
    t2 = time.perf_counter()
    out = paired_bootstrap(data[0], data[1], n=args.resamples, seed=0)
    t3 = time.perf_counter()
    n_det = sum(len(r.coco_preds) for r in results)
    print(
        f"{args.images} images, {n_det} detections in 2 runs "
        f"(generated + scored in {t1 - t0:.1f} s)"
    )
    print(f"per-image matching, both runs:          {t2 - t1:6.2f} s")
    print(f"{args.resamples} paired resamples, {len(DEFAULT_METRICS)} metrics: {t3 - t2:6.2f} s")
    for m, row in out["metrics"].items():
        print(
            f"  {m:<26} delta {row['delta']:+.5f}  "
            f"95% CI [{row['ci_low']:+.5f}, {row['ci_high']:+.5f}]  {row['verdict']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
