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
        [--peer-scales 1000000] [--faster-scales 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
    """Each child's own peak RSS and CPU seconds through /usr/bin/time (when present)."""
    fmt = "MAXRSS %M %U %S"
    return ["/usr/bin/time", "-f", fmt, *cmd] if Path("/usr/bin/time").exists() else cmd


@dataclass
class Timed:
    secs: float  # wall seconds of the whole process
    cpu: float  # its user + system seconds (the wall time on a shared machine waits for cores)
    rss: float  # peak RSS, MB
    out: str | None  # stdout; None when a tolerated peer failed or timed out


def run(cmd: list[str], timeout: float, tolerate: bool = False) -> Timed:
    """One whole process, timed; a peer (`tolerate`) that fails or runs past `timeout` comes
    back with `out` None (its last stderr line printed), so its row still prints."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(max_rss_cmd(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if not tolerate:
            raise
        return Timed(time.perf_counter() - t0, float("nan"), float("nan"), None)
    secs = time.perf_counter() - t0
    if p.returncode and not tolerate:
        raise SystemExit(f"{cmd[:4]} failed:\n{p.stderr[-3000:]}")
    lines = p.stderr.splitlines()
    if p.returncode:  # a peer's failure: its last words, so the row's FAILED has a reason
        tail = [x for x in lines if x.strip() and not x.startswith("MAXRSS")]
        print(f"  (exit {p.returncode}: {tail[-1][:200] if tail else '?'})", file=sys.stderr)
    rss = cpu = float("nan")
    for x in lines:
        if x.startswith("MAXRSS"):
            _, kb, user, system = x.split()
            rss, cpu = int(kb) / 1024, float(user) + float(system)
    return Timed(secs, cpu, rss, None if p.returncode else p.stdout)


def max_diff(ours: dict[str, float], ref: dict[str, float], names: dict[str, str]) -> float:
    """The largest |ours - peer| over every stat (peer key -> our key); a stat the peer does not
    print counts as infinitely different."""
    return max(
        abs(ours[f"lvis_{k}"] - ref[p]) if p in ref else float("inf") for p, k in names.items()
    )


def peer_cell(code: str, gt: Path, dt: Path, ours: dict, mine: Timed, keys: dict, t: float) -> str:
    """`wall s (x ours) cpu s, RSS, max |diff|` of one peer on the pair, or why it failed."""
    r = run([sys.executable, "-c", code, str(gt), str(dt)], t, True)
    if r.out is None:
        return f" {r.secs:6.1f} s FAILED or timed out, {r.rss:5.0f} MB"
    diff = max_diff(ours, json.loads(r.out.strip().splitlines()[-1]), keys)
    return (
        f" {r.secs:6.1f} s ({r.secs / mine.secs:4.1f}x) cpu {r.cpu:6.1f} s "
        f"({r.cpu / mine.cpu:4.1f}x) {r.rss:5.0f} MB {diff:.0e}"
    )


def scales(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="1000000,5000000")
    ap.add_argument("--images", type=int, default=19809)
    ap.add_argument("--cats", type=int, default=1203)
    ap.add_argument("--peer-scales", default="", help="scales at which lvis-api runs too")
    ap.add_argument("--faster-scales", help="scales at which faster-coco-eval runs (all)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lvis_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    lvis_at = set(scales(args.peer_scales))
    faster_at = set(scales(args.faster_scales if args.faster_scales is not None else args.scales))
    print("coordbench: wall s, cpu (user + sys) s, peak RSS; each peer: the same with its time")
    print("over coordbench's, and the largest |stat difference| from coordbench's 13 stats")
    print(f"{args.images} images, {args.cats} categories")
    for scale in scales(args.scales):
        gt, dt = root / f"lvis_gt_{scale}.json", root / f"results_{scale}.json"
        if not (args.keep and gt.exists() and dt.exists()):  # --keep DIR reuses its sets
            gt, dt = make_set(args.images, args.cats, scale, 0, root)
        ev = root / f"ev_{scale}"
        cmd = ["-m", "coordbench", "eval", "--lvis-gt", str(gt), "--lvis-dt", str(dt)]
        mine = run([sys.executable, *cmd, "--out", str(ev)], args.timeout)
        ours = json.loads((ev / "metrics.json").read_text())["metrics"]
        print(
            f"{scale:>11,} detections  coordbench {mine.secs:6.1f} s cpu {mine.cpu:6.1f} s "
            f"{mine.rss:5.0f} MB",
            flush=True,
        )
        if scale in faster_at:
            cell = peer_cell(FASTER, gt, dt, ours, mine, FASTER_KEYS, args.timeout)
            print(f"{'':>24}faster-coco-eval{cell}", flush=True)
        if scale in lvis_at:
            cell = peer_cell(LVIS_API, gt, dt, ours, mine, LVIS_API_KEYS, args.timeout)
            print(f"{'':>24}lvis-api        {cell}", flush=True)
    print(f"files in {root}" if args.keep else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
