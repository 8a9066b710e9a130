"""Whole-process `coordbench eval` vs pycocotools and faster-coco-eval, at several scales.

What a user waits for is the whole command: process start, reading the input, ingest, COCO,
F1, calibration, diagnostics and writing the eval dir. For each scale this bench builds a seeded
synthetic set (100 detections per image, `scoring_speed.synthetic_records`, written in chunks
so that 5 M detections need no 5 M records in memory), then times four whole processes one
after the other on the same data:

- pycocotools: `COCO(gt)`, `loadRes(dt)`, evaluate + accumulate + summarize;
- faster-coco-eval: the same with its `COCO` / `COCOeval_faster`;
- `coordbench eval gt_vs_pred_scored.jsonl` (the run-dir scorer on the scored records);
- `coordbench eval --coco-gt/--coco-dt` on the COCO pair that command wrote.

Peak RSS is each child's `ru_maxrss` from `os.wait4` (the largest of its processes: a forked
helper's shared pages count in full). Every one of the 12 stats of the three others is checked
against pycocotools' (|diff| <= 1e-12) at each scale; with `--pycocotools-max N`, scales above
N skip pycocotools, its time is extrapolated linearly from the largest measured scale (marked
`~`), and the stats there are checked against faster-coco-eval's instead (said in the output).

    .venv/bin/python bench/eval_e2e_speed.py --scales 20000,200000,1000000,5000000 \
        [--pycocotools-max 1000000] [--work DIR] [--no-matches]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scoring_speed import synthetic_records  # noqa: E402

STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
DETS = 100  # per image
CHUNK_IMAGES = 2000  # images generated (and held) at once

PEER = r"""
import contextlib, io, json, sys
tool, gt_path, dt_path = sys.argv[1:4]
with contextlib.redirect_stdout(io.StringIO()):
    if tool == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(dt_path), "bbox")
    else:
        from faster_coco_eval import COCO, COCOeval_faster
        gt = COCO(gt_path)
        ev = COCOeval_faster(gt, gt.loadRes(dt_path), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
print(json.dumps([float(s) for s in ev.stats[:12]]))
"""


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process (`os.wait4` on its pid);
    a failure stops the bench."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    out_chunks, err_chunks = [], []
    # read both pipes to the end, then reap with wait4 to get this child's rusage
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out_chunks)
    sel.register(proc.stderr, selectors.EVENT_READ, err_chunks)
    while sel.get_map():
        for key, _ in sel.select():
            data = os.read(key.fd, 1 << 16)
            if data:
                key.data.append(data)
            else:
                sel.unregister(key.fileobj)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = b"".join(out_chunks).decode(), b"".join(err_chunks).decode()
    if proc.returncode:
        sys.stderr.write(out + err)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024, out


def write_input(path: Path, n_images: int, seed: int) -> int:
    """The scored-records file of `n_images` images (chunked generation); its detections."""
    if path.exists() and path.with_suffix(".n").exists():
        return int(path.with_suffix(".n").read_text())
    n_det = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for c, start in enumerate(range(0, n_images, CHUNK_IMAGES)):
            recs = synthetic_records(min(CHUNK_IMAGES, n_images - start), seed + c, dets=DETS)
            for i, r in enumerate(recs):
                r["image"] = f"synthetic/{start + i:07d}.jpg"
                n_det += len(r["pred"])
                f.write(json.dumps(r) + "\n")
    tmp.replace(path)
    path.with_suffix(".n").write_text(str(n_det))
    return n_det


def stats_of(metrics_path: Path) -> np.ndarray:
    metrics = json.loads(metrics_path.read_text())["metrics"]
    return np.array([metrics[f"bbox_{s}"] for s in STATS])


def one_scale(n: int, work: Path, args: argparse.Namespace, ref_fit: list) -> dict:
    n_images = max(1, n // DETS)
    d = work / f"s{n}"
    d.mkdir(parents=True, exist_ok=True)
    src = d / "gt_vs_pred_scored.jsonl"
    n_det = write_input(src, n_images, args.seed)
    print(f"\n{n_images} images, {n_det} detections, {src.stat().st_size / 1e6:.0f} MB", flush=True)
    py = sys.executable
    cmd = [py, "-m", "coordbench", "eval", str(src), "--out", str(d / "eval")]
    row: dict = {"n": n_det, "images": n_images}
    flags = ["--no-matches"] if args.no_matches else []
    row["ours"] = run_child(cmd + flags)[:2]
    row["one_core"] = run_child(cmd + flags, {"COORDBENCH_FORK": "0"})[:2]  # no forked child
    ours = stats_of(d / "eval" / "metrics.json")
    gt, dt = d / "eval" / "coco_gt.json", d / "eval" / "coco_preds.json"
    pair_cmd = [py, "-m", "coordbench", "eval", "--coco-gt", str(gt), "--coco-dt", str(dt)]
    row["pair"] = run_child(pair_cmd + ["--out", str(d / "pair")])[:2]
    pair = stats_of(d / "pair" / "metrics.json")
    wall, rss, out = run_child([py, "-c", PEER, "faster", str(gt), str(dt)])
    row["fce"], fce = (wall, rss), np.array(json.loads(out))
    if args.pycocotools_max is None or n <= args.pycocotools_max:
        wall, rss, out = run_child([py, "-c", PEER, "pycocotools", str(gt), str(dt)])
        row["ref"], ref, row["ref_name"] = (wall, rss), np.array(json.loads(out)), "pycocotools"
        ref_fit.append((n_det, wall))
    else:  # extrapolated: seconds per detection of the largest measured scale
        big_n, big_t = max(ref_fit) if ref_fit else (n_det, float("nan"))
        row["ref"], ref, row["ref_name"] = (big_t * n_det / big_n, None), fce, "faster-coco-eval"
        row["extrapolated"] = True
    row["ok"] = {}
    for name, got in (("coordbench eval", ours), ("--coco-gt/--coco-dt", pair), ("fce", fce)):
        diff = float(np.max(np.abs(got - ref)))
        row["ok"][name] = diff <= 1e-12
        print(f"  {name:<22} max |diff| vs {row['ref_name']} over 12 stats: {diff:.1e}")
    r = row
    print(
        f"  pycocotools {r['ref'][0]:.2f} s | faster-coco-eval {r['fce'][0]:.2f} s | "
        f"eval scored.jsonl {r['ours'][0]:.2f} s {r['ours'][1]:.0f} MB | "
        f"one core {r['one_core'][0]:.2f} s {r['one_core'][1]:.0f} MB | "
        f"pair {r['pair'][0]:.2f} s {r['pair'][1]:.0f} MB",
        flush=True,
    )
    return row


def cell(t: float, rss: float | None, ref: float, approx: bool = False) -> str:
    mb = "" if rss is None else (f", {rss / 1024:.1f} GB" if rss >= 1024 else f", {rss:.0f} MB")
    ratio = "" if t == ref else f" ({ref / t:.1f}×)"
    return f"{'~' if approx else ''}{t:.2f} s{ratio}{mb}"


def table(rows: list[dict]) -> str:
    head = (
        "| detections | pycocotools | faster-coco-eval | `coordbench eval scored.jsonl` "
        "| same, one core (`COORDBENCH_FORK=0`) | `coordbench eval --coco-gt/--coco-dt` |\n"
        "|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        ref_t, ref_rss = r["ref"]
        approx = r.get("extrapolated", False)
        lines.append(
            f"| {r['n'] / 1000:.0f} k | {cell(ref_t, ref_rss, ref_t, approx)} "
            f"| {cell(*r['fce'], ref_t)} | {cell(*r['ours'], ref_t)} "
            f"| {cell(*r['one_core'], ref_t)} | {cell(*r['pair'], ref_t)} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="200000", help="detections, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="keep inputs and eval dirs here (default: a temp dir)")
    ap.add_argument("--pycocotools-max", type=int, default=None, help="extrapolate above this")
    ap.add_argument("--no-matches", action="store_true", help="time `eval --no-matches`")
    args = ap.parse_args()
    import tempfile

    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        load = os.getloadavg()
        print(f"cores {os.cpu_count()}, load average at start {load[0]:.2f} {load[1]:.2f}")
        ref_fit: list = []
        rows = [one_scale(n, work, args, ref_fit) for n in scales]
        load = os.getloadavg()
        print(f"\nload average at end {load[0]:.2f} {load[1]:.2f}\n")
        print(table(rows))
        for r in rows:
            note = " (pycocotools extrapolated; stats checked against faster-coco-eval)"
            ratio = r["ref"][0] / r["ours"][0]
            one = r["one_core"][0]
            print(
                f"{r['n']:>9} detections: eval scored.jsonl {ratio:.1f}× pycocotools, "
                f"{r['fce'][0] / r['ours'][0]:.1f}× faster-coco-eval, peak RSS "
                f"{r['ours'][1]:.0f} MB; one core {r['ref'][0] / one:.1f}× / "
                f"{r['fce'][0] / one:.1f}×, {r['one_core'][1]:.0f} MB"
                f"{note if r.get('extrapolated') else ''}"
            )
        ok = all(all(r["ok"].values()) for r in rows)
        print(f"all 12 stats equal (1e-12) at every scale: {ok}")
        big = rows[-1]
        print(
            f"ratio pycocotools / coordbench eval at {big['n']} detections: "
            f"{big['ref'][0] / big['ours'][0]:.2f}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
