"""`coordbench eval --lvis-gt/--lvis-dt` vs lvis-api vs faster-coco-eval's LVIS mode, whole
processes side by side on one seeded LVIS-scale set.

The GT has LVIS val's shape (19 809 images, 1 203 categories with r/c/f frequencies, ~12 boxes
per image over a few positive categories, negative and not-exhaustive lists); the results hold
`scale / images` detections per image (capped at 300, as LVIS scores them), mostly jittered GT
boxes of positive or negative categories plus boxes of unlisted categories (not evaluated).
Each tool runs as its own process on the same two files: the time is the whole process (start,
reading both files, evaluating), and peak RSS is the child's `ru_maxrss`. lvis-api is slow
(pure Python over every image x category pair), so `--peer-scales` names the scales it runs at;
faster-coco-eval gets the same per-image top-300 results (it caps per image and category).

    .venv/bin/python bench/lvis_speed.py [--scales 1000000,5000000] [--images 19809]
        [--peer-scales 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR@300")
STATS += ("ARs@300", "ARm@300", "ARl@300")
LVIS_API_KEYS = {k: k for k in STATS}
# faster-coco-eval's stats_as_dict names (lvis_style) -> lvis-api's
FASTER_KEYS = {
    "AP_all": "AP",
    "AP_50": "AP50",
    "AP_75": "AP75",
    "AP_small": "APs",
    "AP_medium": "APm",
    "AP_large": "APl",
    "APr": "APr",
    "APc": "APc",
    "APf": "APf",
    "AR_all": "AR@300",
    "AR_small": "ARs@300",
    "AR_medium": "ARm@300",
    "AR_large": "ARl@300",
}

LVIS_API = r"""
import json, sys
import numpy as np
np.float = float  # lvis-api 0.5.3 on NumPy 2
from lvis import LVIS, LVISEval, LVISResults
gt = LVIS(sys.argv[1])
ev = LVISEval(gt, LVISResults(gt, sys.argv[2], max_dets=300), "bbox")
ev.run()
print(json.dumps({k: float(v) for k, v in ev.results.items()}))
"""

FASTER = r"""
import json, sys
from faster_coco_eval import COCO, COCOeval_faster
gt = COCO(sys.argv[1])
dt = gt.loadRes(sys.argv[2])
ev = COCOeval_faster(gt, dt, "bbox", lvis_style=True, print_function=lambda *a: None)
ev.params.maxDets = [300]
ev.evaluate(); ev.accumulate(); ev.summarize()
s = ev.stats_as_dict
print(json.dumps({k: float(v) for k, v in s.items()}))
"""


def make_set(n_img: int, n_cat: int, scale: int, seed: int, root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    freq = np.array(["r"] * 337 + ["c"] * 461 + ["f"] * 405)[:n_cat]
    cats = [
        {
            "id": k + 1,
            "name": f"cat{k}",
            "synonyms": [f"cat{k}"],
            "frequency": str(freq[k % len(freq)]),
        }
        for k in range(n_cat)
    ]
    images, anns = [], []
    per_img = max(1, min(300, scale // n_img))
    gt_path, dt_path = root / f"lvis_gt_{scale}.json", root / f"results_{scale}.json"
    out = dt_path.open("wb")  # written image by image: 5 M result dicts never exist at once
    out.write(b"[")
    aid = 1
    for i in range(n_img):
        w, h = int(rng.integers(320, 641)), int(rng.integers(320, 641))
        pos = rng.choice(n_cat, size=int(rng.integers(1, 6)), replace=False) + 1
        neg = rng.choice(n_cat, size=int(rng.integers(5, 15)), replace=False) + 1
        neg = np.setdiff1d(neg, pos)
        nel = pos[rng.random(len(pos)) < 0.2]
        images.append(
            {
                "id": i + 1,
                "width": w,
                "height": h,
                "neg_category_ids": neg.tolist(),
                "not_exhaustive_category_ids": nel.tolist(),
            }
        )
        n_gt = int(rng.integers(4, 21))
        gcat = rng.choice(pos, n_gt)
        bw, bh = rng.uniform(4, w / 2, n_gt), rng.uniform(4, h / 2, n_gt)
        x, y = rng.uniform(0, 1, n_gt) * (w - bw), rng.uniform(0, 1, n_gt) * (h - bh)
        gboxes = np.round(np.stack([x, y, bw, bh], 1), 2)
        for c, b in zip(gcat.tolist(), gboxes.tolist(), strict=True):
            anns.append(
                {
                    "id": aid,
                    "image_id": i + 1,
                    "category_id": c,
                    "bbox": b,
                    "area": round(b[2] * b[3], 2),
                }
            )
            aid += 1
        src = rng.integers(0, n_gt, per_img)
        kind = rng.random(per_img)
        jit = rng.normal(0, 0.15, (per_img, 4)) * gboxes[src][:, [2, 3, 2, 3]]
        boxes = np.round(np.clip(gboxes[src] + jit, 0.5, None), 2)
        dcat = np.where(
            kind < 0.6,
            gcat[src],
            np.where(
                kind < 0.85,
                rng.choice(np.r_[neg, pos], per_img),
                rng.integers(1, n_cat + 1, per_img),
            ),
        )
        scores = np.round(rng.random(per_img), 4)
        results = [
            {"image_id": i + 1, "category_id": int(c), "bbox": b, "score": float(s)}
            for c, b, s in zip(dcat.tolist(), boxes.tolist(), scores.tolist(), strict=True)
        ]
        out.write((b"," if i else b"") + orjson.dumps(results)[1:-1])
    out.write(b"]")
    out.close()
    gt_path.write_bytes(orjson.dumps({"images": images, "annotations": anns, "categories": cats}))
    return gt_path, dt_path


def max_rss_cmd(cmd: list[str]) -> list[str]:
    """Each child's own peak RSS: /usr/bin/time -v when present, else the process group max."""
    return ["/usr/bin/time", "-f", "MAXRSS %M", *cmd] if Path("/usr/bin/time").exists() else cmd


def run(cmd: list[str], timeout: float, tolerate: bool = False) -> tuple[float, float, str | None]:
    """(seconds, peak RSS in MB, stdout) of one whole process; stdout is None when a peer
    (`tolerate`) fails or runs past `timeout`, so one peer's failure still prints the row."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(max_rss_cmd(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if not tolerate:
            raise
        return time.perf_counter() - t0, float("nan"), None
    secs = time.perf_counter() - t0
    if p.returncode and not tolerate:
        raise SystemExit(f"{cmd[:4]} failed:\n{p.stderr[-3000:]}")
    rss = next(
        (int(x.split()[1]) / 1024 for x in p.stderr.splitlines() if x.startswith("MAXRSS")),
        float("nan"),
    )
    return secs, rss, (None if p.returncode else p.stdout)


def max_diff(ours: dict[str, float], ref: dict[str, float], names: dict[str, str]) -> float:
    """The largest |ours - peer| over every stat (peer key -> our key); a stat the peer does not
    print counts as infinitely different."""
    return max(
        abs(ours[f"lvis_{k}"] - ref[p]) if p in ref else float("inf") for p, k in names.items()
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="1000000,5000000")
    ap.add_argument("--images", type=int, default=19809)
    ap.add_argument("--cats", type=int, default=1203)
    ap.add_argument("--peer-scales", default="", help="scales at which lvis-api runs too")
    ap.add_argument("--no-faster", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lvis_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    peer = {int(s) for s in args.peer_scales.split(",") if s}
    env_py = sys.executable
    print("each peer: whole-process seconds (its time / coordbench's), peak RSS, max |stat diff|")
    print(f"{'detections':>11} | {'coordbench':>18} | {'faster-coco-eval':>32} | {'lvis-api':>32}")
    for scale in (int(s) for s in args.scales.split(",")):
        gt, dt = root / f"lvis_gt_{scale}.json", root / f"results_{scale}.json"
        if not (args.keep and gt.exists() and dt.exists()):  # --keep DIR reuses its sets
            gt, dt = make_set(args.images, args.cats, scale, 0, root)
        ours_s, ours_rss, _ = run(
            [
                env_py,
                "-m",
                "coordbench",
                "eval",
                "--lvis-gt",
                str(gt),
                "--lvis-dt",
                str(dt),
                "--out",
                str(root / f"ev_{scale}"),
            ],
            args.timeout,
        )
        ours = json.loads((root / f"ev_{scale}" / "metrics.json").read_text())["metrics"]
        row = f"{scale:>11,} | {ours_s:7.1f} s {ours_rss:6.0f} MB |"
        if not args.no_faster:
            f_s, f_rss, out = run([env_py, "-c", FASTER, str(gt), str(dt)], args.timeout, True)
            if out is None:
                row += f" {f_s:6.1f} s FAILED or timed out {f_rss:5.0f} MB |"
            else:
                diff = max_diff(ours, json.loads(out.strip().splitlines()[-1]), FASTER_KEYS)
                row += f" {f_s:6.1f} s ({f_s / ours_s:4.1f}x) {f_rss:5.0f} MB {diff:.0e} |"
        if scale in peer:
            l_s, l_rss, out = run([env_py, "-c", LVIS_API, str(gt), str(dt)], args.timeout, True)
            if out is None:
                row += f" {l_s:6.1f} s FAILED or timed out, {l_rss:5.0f} MB"
            else:
                diff = max_diff(ours, json.loads(out.strip().splitlines()[-1]), LVIS_API_KEYS)
                row += f" {l_s:6.1f} s ({l_s / ours_s:4.1f}x) {l_rss:5.0f} MB {diff:.0e}"
        print(row, flush=True)
    print(f"files in {root}" if args.keep else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
