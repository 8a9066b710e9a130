"""Decode speed: coordbench's seeded decode loop against transformers' own `model.generate`.

Same model, inputs and max_new_tokens, greedy, both in one process, at several batch sizes.
Prints tokens/s for each, their ratio, and whether the greedy tokens are equal. Stop tokens are
switched off on both sides so every row generates exactly max_new_tokens (equal work).

Models: the embedded model, and a mid-size random-weight Qwen2.5-VL with the real 3B widths
(hidden 2048, 16 heads, vision 1280 wide) cut to 2 text and 2 vision layers
(`coordbench.embedded.real_configs`). The last line is `decode_ratio_vs_generate_bs8=X.XX`
(coordbench tokens/s / generate tokens/s at batch 8, on the mid-size model when it runs).

    python bench/decode_speed.py                     # both models, bs 1/4/8/16 (a few minutes)
    python bench/decode_speed.py --quick             # embedded only, bs 1/8, 8 tokens
    python bench/decode_speed.py --models mid --max-new-tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from coordbench.backends.hf import HFBackend
from coordbench.backends.hf_inputs import build_inputs
from coordbench.config.options import GenerationParams
from coordbench.config.run import EMBEDDED_CKPT
from coordbench.embedded.real_configs import save_real
from coordbench.types import GenerationRequest

# Small images keep CPU prefill short, so the numbers are mostly the decode loop's: 64 px is
# on the embedded model's 32-px grid (16-px patches), 112 px on the mid model's 28-px grid
# (the smallest multiple of 28 above the processor's 4096-pixel minimum).
SIDES = {"embedded": 64, "mid": 112}


def requests(n: int, side: int) -> list[GenerationRequest]:
    """n requests with distinct random images and slightly different prompt lengths."""
    out = []
    for i in range(n):
        pix = (np.random.RandomState(i).rand(side, side, 3) * 255).astype("uint8")
        content = [
            {"type": "image", "image": Image.fromarray(pix)},
            {"type": "text", "text": "Detect every object." + " Please." * (i % 3)},
        ]
        msgs = [{"role": "user", "content": content}]
        out.append(GenerationRequest(f"s{i}", msgs, None, i))
    return out


def run_ours(be: HFBackend, reqs, params: GenerationParams) -> tuple[float, list[list[int]]]:
    t0 = time.perf_counter()
    gens = be.generate(reqs, params)
    return time.perf_counter() - t0, [g.token_ids for g in gens]


def run_generate(be: HFBackend, reqs, max_new: int) -> tuple[float, list[list[int]]]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        inputs = build_inputs(be.processor, be.template, reqs, be.device, be.dtype)
        out = be.model.generate(**inputs, max_new_tokens=max_new, min_new_tokens=0, do_sample=False)
    dt = time.perf_counter() - t0
    new = out[:, inputs["input_ids"].shape[1] :].tolist()
    return dt, new


def no_stop(be: HFBackend) -> None:
    """Equal work on both sides: no stop token ends a row early."""
    be.stop_ids = set()
    gc = be.model.generation_config
    gc.eos_token_id = None
    gc.pad_token_id = be.tokenizer.pad_token_id
    gc.do_sample, gc.temperature, gc.top_p, gc.top_k = False, None, None, None


def bench_model(name: str, ckpt: Path, side: int, args) -> dict[int, float]:
    be = HFBackend(ckpt, device=args.device, threads=args.threads)
    no_stop(be)
    params = GenerationParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    warm = requests(2, side)
    run_ours(be, warm, GenerationParams(temperature=0.0, max_new_tokens=2))
    run_generate(be, warm, 2)
    n_params = sum(p.numel() for p in be.model.parameters()) / 1e6
    print(
        f"\n[{name}] {n_params:.0f} M params, {side}x{side} images, "
        f"max_new_tokens={args.max_new_tokens}, threads={torch.get_num_threads()}"
    )
    print(f"{'bs':>4} {'coordbench tok/s':>17} {'generate tok/s':>15} {'ratio':>6} {'equal':>7}")
    ratios = {}
    for bs in args.batch_sizes:
        reqs = requests(bs, side)
        t_ours, t_gen = float("inf"), float("inf")
        for r in range(args.repeats):  # interleaved, first one swapping, best of N: both
            for who in ("ours", "gen") if r % 2 == 0 else ("gen", "ours"):  # see the same load
                if who == "ours":
                    dt, ours = run_ours(be, reqs, params)
                    t_ours = min(t_ours, dt)
                else:
                    dt, theirs = run_generate(be, reqs, args.max_new_tokens)
                    t_gen = min(t_gen, dt)
        n_tok = bs * args.max_new_tokens
        equal = sum(a == b for a, b in zip(ours, theirs, strict=True))
        ratios[bs] = t_gen / t_ours
        print(
            f"{bs:>4} {n_tok / t_ours:>17.1f} {n_tok / t_gen:>15.1f} {ratios[bs]:>6.2f} "
            f"{equal:>3}/{bs:<3}"
        )
        if equal != bs:
            print(f"  greedy tokens differ in {bs - equal} row(s) at bs {bs}", file=sys.stderr)
            args.mismatch = True
    be.close()
    return ratios


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="embedded,mid", help="embedded, mid, or both")
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="best of N per point")
    ap.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: 1 on CPU, else torch's)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="embedded only, bs 1/8, 8 tokens")
    ap.add_argument("--strict", action="store_true", help="exit 1 if greedy tokens differ")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.batch_sizes, args.max_new_tokens, args.repeats = "embedded", "1,8", 8, 1
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.mismatch = False
    if args.threads is None and args.device == "cpu":
        args.threads = 1  # measured: extra threads on a shared 2-core box cost far more than win
    models = [m.strip() for m in args.models.split(",")]
    results: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            if m == "embedded":
                results[m] = bench_model("embedded", EMBEDDED_CKPT, SIDES[m], args)
            elif m == "mid":
                t0 = time.perf_counter()
                ckpt = save_real("Qwen2.5-VL-3B", Path(tmp) / "mid", seed=0)
                print(
                    f"built mid-size Qwen2.5-VL-3B (2+2 layers) in {time.perf_counter() - t0:.1f}s"
                )
                results[m] = bench_model(
                    "mid: Qwen2.5-VL-3B widths, 2+2 layers", ckpt, SIDES[m], args
                )
            else:
                ap.error(f"unknown model {m!r} (embedded, mid)")
    head = results.get("mid") or results[models[0]]
    if 8 not in head:
        ap.error("--batch-sizes must include 8 for the headline ratio")
    print(f"decode_ratio_vs_generate_bs8={head[8]:.2f}")
    return 1 if args.strict and args.mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
